"""Training: the configuration, one optimisation step, and the loop (the paper's protocol
by default, resumable, single process or DDP).

The loop writes a checkpoint (dhif.checkpoint.training_state) atomically to <out>/last.pt
after every epoch, and after the current step when Ctrl-C stops it, so that a run
resumes where it stopped (a killed one from the last finished epoch) and continues
exactly as an uninterrupted run would: the training samples of epoch e are a pure
function of (seed, e, index).
"""
import csv
import dataclasses
import os
import signal
import sys
import threading
import time
import warnings
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from .checkpoint import load_checkpoint, restore_training_state, save_atomic, training_state
from .data import SceneDataset
from .models import DHIFNet, ModelConfig
from .models.physics import init_observation_operators
from .report import claim_output, release_folder


@dataclasses.dataclass
class TrainConfig(ModelConfig):
    """The model's configuration (ModelConfig's fields) and the run's. Defaults are the
    authors' CAVE protocol (x8)."""
    out: str = "runs/dhif"
    filter_impl: str = "auto"
    epochs: int = 500
    samples_per_epoch: int = 20000
    batch_size: int = 4
    patch: int = 96
    lr: float = 3e-4
    lr_decay: float = 0.95       # x0.95 ...
    lr_decay_every: int = 5      # ... every 5 epochs ...
    lr_decay_until: int = 150    # ... up to epoch 150
    sigma: float = 2.0
    seed: int = 1
    workers: int = 2             # DataLoader processes
    device: str = "auto"
    bf16: bool = False
    val_every: int = 10
    val_tile: int = 256          # HR tile size for whole validation scenes
    tensorboard: bool = False
    time_limit: float = None     # seconds; stop after the epoch that crosses it
    checkpoint_every: int = 0    # also keep epoch_NNN.pt every N epochs (0: only last.pt)
    init_operators: str = "random"  # or "physics": R, B from the known response and blur
    # The data protocol, recorded in every checkpoint (sigma above is the blur's).
    data: str = None             # the dataset folder (--cave or --data)
    scaling: str = "as-read"     # a key of dhif.data.scenes.SCALINGS
    srf: str = "nikon_d700"      # the spectral response: a name or a file
    train_scenes: list = None


def pick_device(name: str = "auto") -> torch.device:
    """The device to run on; ValueError, before any work, for one that is not usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: dhif runs on cpu or cuda")
    return device


def has_native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix arithmetic is native here (Ampere and later GPUs; CPUs with
    AVX512-BF16 or AMX, where oneDNN's bf16 convolutions run about twice as fast as fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)  # private, so guarded
        return bool(probe is not None and probe())
    return False


def lr_factor(config: TrainConfig):
    """The authors' schedule: x decay at epochs 1, 1 + every, ... below `until`."""
    milestones = range(1, config.lr_decay_until, config.lr_decay_every)
    return lambda epoch: config.lr_decay ** sum(1 for m in milestones if m <= epoch)


class _Distributed:
    """torchrun's environment, or a single process."""

    def __init__(self, device: torch.device):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.device = device
        if self.world > 1 and not dist.is_initialized():
            backend = "nccl" if device.type == "cuda" else "gloo"
            if device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            dist.init_process_group(backend)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.item() / self.world

    def any(self, flag: bool) -> bool:
        """Whether `flag` is true on any rank (every rank gets the same answer)."""
        if self.world == 1:
            return flag
        tensor = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
        return tensor.item() > 0

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def scene_validator(scenes: dict, config: TrainConfig, srf: torch.Tensor):
    """validate(model, device) -> mean PSNR over whole simulated scenes (tiled)."""
    from .inference import reconstruct_image
    from .metrics import psnr

    dataset = SceneDataset(scenes, config.scale, srf, config.sigma)

    def validate(model, device) -> float:
        model.eval()
        values = []
        with torch.no_grad():
            for lr, msi, hr, _ in dataset:
                pred = reconstruct_image(model, lr[None].to(device), msi[None].to(device), config.val_tile)
                values.append(psnr(pred.clamp(0, 1), hr[None].to(device)))
        model.train()
        return sum(values) / len(values)

    return validate


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped training between two steps; the run's state is saved."""

    def __init__(self, checkpoint: Path, epoch: int, step: int, steps: int, signum: int = signal.SIGINT):
        super().__init__(f"{signal.Signals(signum).name} stopped training at epoch {epoch + 1}, step {step} of "
                         f"{steps}; the run's state is saved in {checkpoint}")
        self.checkpoint = checkpoint
        self.signum = signum


class _StopRequest:
    """While active, the first Ctrl-C (SIGINT) or SIGTERM, which clusters send on preemption
    and time limits, asks the loop to stop after the current step (so that the saved state
    is whole); a second one stops at once. Forked DataLoader workers inherit the handler
    but stay quiet: only the process that installed it speaks."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.enabled = threading.current_thread() is threading.main_thread()
        self.signum = None
        self._owner = os.getpid()
        self._previous = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if os.getpid() != self._owner:
            return
        if self.requested:
            raise KeyboardInterrupt
        self.signum = signum
        _quietly(lambda: print(f"\n{signal.Signals(signum).name}: stopping after this step (again to stop at "
                               "once)", file=sys.stderr, flush=True))

    @classmethod
    def ignore_in_worker(cls, worker_id: int):
        """DataLoader's worker_init_fn: a cluster's SIGTERM reaches every process of the job,
        and the workers must live until the main process has finished its step and saved."""
        for signum in cls.SIGNALS:
            signal.signal(signum, signal.SIG_IGN)

    def __enter__(self):
        if self.enabled:
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        return False


def train_step(model, optimizer, lr_hsi, hr_msi, hr_hsi, bf16: bool = False) -> torch.Tensor:
    """One optimisation step of the L1 loss, the authors' objective; returns the loss.
    bf16: the forward under bfloat16 autocast (the loss in float32)."""
    with torch.autocast(lr_hsi.device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = model(lr_hsi, hr_msi)
    loss = F.l1_loss(pred.float(), hr_hsi)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


# Settings that a resumed run may change freely: where and how it runs, how long, what it
# reports. Any other difference from the checkpoint's configuration changes the training
# itself, and a resume that silently mixed two configurations would not be exact.
RESUME_FREE = {"out", "epochs", "device", "workers", "tensorboard", "val_every", "val_tile", "time_limit",
               "checkpoint_every", "filter_impl", "data"}


def configuration_changes(saved: dict, config: TrainConfig) -> dict:
    """{key: (checkpoint's value, config's value)} for the settings that differ."""
    now, defaults = dataclasses.asdict(config), dataclasses.asdict(TrainConfig())
    # A key that an older checkpoint lacks had the default's value.
    return {k: (saved.get(k, defaults[k]), v) for k, v in now.items()
            if k not in RESUME_FREE and saved.get(k, defaults[k]) != v}


def _apply_changes(config: TrainConfig, optimizer, scheduler):
    """The new learning rate and schedule take effect from the epoch the run resumes at;
    patch, samples, seed and the rest reach the dataset and the loop through config."""
    for group in optimizer.param_groups:
        group["initial_lr"] = config.lr
    scheduler.base_lrs = [config.lr] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["lr"] = config.lr * factor(scheduler.last_epoch)
    scheduler._last_lr = [group["lr"] for group in optimizer.param_groups]


class _LongRunEstimate:
    """Says once, a few steps in, how long the run will take when that is more than
    LONG_RUN_S (the paper's protocol on a CPU: about a day per epoch), from the measured
    time per step, so that nobody waits a day without a word."""

    LONG_RUN_S = 3600
    MEASURED_STEPS = 3

    def __init__(self, device):
        self.device, self.steps, self.since = device, -1, None

    def step(self, remaining_steps: int):
        self.steps += 1
        if self.steps == 0:  # the first step warms up: measured from its end
            self.since = time.time()
        elif self.steps == self.MEASURED_STEPS:
            per_step = (time.time() - self.since) / self.steps
            seconds = per_step * remaining_steps
            if seconds > self.LONG_RUN_S:
                tqdm.write(f"dhif train: this run needs about {seconds / 3600:.1f} hours more on {self.device} "
                           f"({per_step:.2f} s per step, {remaining_steps} steps to go); fewer --epochs or "
                           "--samples, or a GPU, shorten it")


def _stop_and_save(env, model, optimizer, scheduler, epoch, config, last, total, count):
    """Rank 0 saves the state after `count` steps of `epoch` for the same command to resume;
    the saved loss total is the ranks' mean, so that the epoch's mean loss comes out the same."""
    total = env.mean(total)
    if env.main:
        state = training_state(model, optimizer, scheduler, epoch, config, env.device)
        state["interrupted"] = {"total": total, "count": count}
        save_atomic(state, last)
    env.barrier()
    env.close()


def _quietly(write):
    try:
        write()
    except (OSError, ValueError):  # a closed terminal or pipe
        pass


def train(config: TrainConfig, dataset, validate=None, srf: torch.Tensor = None, progress: bool = True,
          apply_changes: bool = False) -> dict:
    """Trains (or resumes from <out>/last.pt) a DHIFNet on a dataset of (lr_hsi, hr_msi,
    hr_hsi) samples that has set_epoch (PatchDataset). validate(model, device) -> PSNR runs
    every config.val_every epochs. srf is needed for init_operators='physics'. A resume
    refuses a configuration that differs from the checkpoint's, naming the keys, unless
    apply_changes (then the new values apply from the resumed epoch on; the model's own
    keys can never change). Returns {'epoch', 'loss', 'val_psnr', 'checkpoint'}."""
    out = Path(config.out)
    env = _Distributed(pick_device(config.device))
    device = env.device
    torch.manual_seed(config.seed)
    model = DHIFNet(config, filter_impl=config.filter_impl).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config))
    if config.init_operators == "physics":
        init_observation_operators(model, srf, config.sigma)
    if config.bf16 and not has_native_bf16(device):
        warnings.warn(f"dhif train: bf16 autocast on {device} without native bf16 arithmetic is slower than "
                      "float32", RuntimeWarning, stacklevel=2)
    start_epoch = 0
    last = out / "last.pt"
    finished, interrupted = {}, None
    if last.exists():
        checkpoint = load_checkpoint(last, map_location=device)
        changes = configuration_changes(checkpoint["config"], config)
        described = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items())
        fixed = sorted(set(changes) & set(ModelConfig.keys()))
        if fixed or (changes and not apply_changes):
            raise ValueError(f"{last} was trained with other settings ({described}); resume with the same settings"
                             + ("" if fixed else ", or pass --apply-changes to continue with the new ones")
                             + ", or choose another --out")
        start_epoch = restore_training_state(checkpoint, model, optimizer, scheduler, device)
        finished = checkpoint.get("metrics", {})
        interrupted = checkpoint.get("interrupted")
        if changes:
            _apply_changes(config, optimizer, scheduler)
        if env.main:
            at = f"epoch {start_epoch + 1}, step {interrupted['count'] + 1}" if interrupted else f"epoch {start_epoch}"
            print(f"resuming {last} at {at}" + (f", applying {described}" if changes else ""), flush=True)
            if start_epoch >= config.epochs:
                print(f"{last} has already been trained for {start_epoch} epochs (--epochs {config.epochs})",
                      flush=True)
    wrapped = model
    if env.world > 1:
        wrapped = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                                            else None)
    # Samples are already random functions of (seed, epoch, index): no shuffling needed.
    sampler = DistributedSampler(dataset, shuffle=False) if env.world > 1 else None
    loader = DataLoader(dataset, batch_size=config.batch_size, sampler=sampler, num_workers=config.workers,
                        drop_last=True, persistent_workers=config.workers > 0,
                        worker_init_fn=_StopRequest.ignore_in_worker)
    if env.main:
        claim_output(out, (), overwrite=False)  # an unwritable folder fails now, not after the first epoch
    log_path = out / "log.csv"
    writer = None
    if config.tensorboard and env.main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(out / "tensorboard")
    started = time.time()
    result = {"epoch": start_epoch, "loss": finished.get("loss"), "val_psnr": finished.get("val_psnr"),
              "checkpoint": str(last)}
    # A time-budgeted run (fuse) shows one bar over its budget, a run of short epochs (the
    # demo's) one bar over its epochs; a run of long epochs shows one bar per epoch and a
    # line after each.
    short_epochs = len(loader) < 50
    whole_run = progress and env.main and bool(config.time_limit or short_epochs)
    budget_bar = tqdm(total=round(config.time_limit) if config.time_limit else config.epochs,
                      initial=0 if config.time_limit else start_epoch, desc="training", disable=not whole_run,
                      bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} "
                                 + ("s" if config.time_limit else "epochs") + "{postfix}")
    per_epoch = progress and env.main and not whole_run
    model.train()
    stop = _StopRequest()
    estimate = _LongRunEstimate(device)
    for epoch in range(start_epoch, config.epochs):
        dataset.set_epoch(epoch)
        if sampler is not None:
            sampler.set_epoch(epoch)
        epoch_start, total, count = time.time(), 0.0, 0
        batches = loader
        if epoch == start_epoch and interrupted:  # the rest of an epoch that Ctrl-C stopped
            total, count = interrupted["total"], interrupted["count"]
            # This rank's samples of the epoch from the first step not taken (its shard under DDP).
            remaining = list(sampler if sampler is not None else range(len(dataset)))[count * config.batch_size:]
            batches = DataLoader(dataset, batch_size=config.batch_size, num_workers=config.workers, drop_last=True,
                                 sampler=remaining, worker_init_fn=_StopRequest.ignore_in_worker)
        epoch_lr = scheduler.get_last_lr()[0]  # the rate of this epoch's steps
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{config.epochs}", disable=not per_epoch, leave=False)
        with stop:
            for lr_hsi, hr_msi, hr_hsi in bar:
                loss = train_step(wrapped, optimizer, lr_hsi.to(device), hr_msi.to(device), hr_hsi.to(device),
                                  config.bf16)
                total, count = total + loss.item(), count + 1
                # Under torchrun every rank stops after the same step; rank 0 saves. The
                # state is saved before anything is written to a terminal or pipe that the
                # same Ctrl-C may have closed.
                if env.any(stop.requested):
                    _stop_and_save(env, model, optimizer, scheduler, epoch, config, last, total, count)
                    for progress_bar in (bar, budget_bar):
                        _quietly(progress_bar.close)
                    raise TrainingInterrupted(last, epoch, count, len(loader), stop.signum or signal.SIGTERM)
                rate = count * config.batch_size * env.world / (time.time() - epoch_start)
                bar.set_postfix(loss=f"{total / count:.5f}", samples_per_s=f"{rate:.1f}")
                if env.main and progress and not config.time_limit:  # a time budget ends on time
                    estimate.step((config.epochs - epoch) * len(loader) - count)
        scheduler.step()
        mean_loss = env.mean(total / max(count, 1))
        val_psnr = None
        if validate and env.main and config.val_every and (epoch + 1) % config.val_every == 0:
            val_psnr = validate(model, device)
        result.update(epoch=epoch + 1, loss=mean_loss, val_psnr=val_psnr)
        if env.main:
            checkpoint = training_state(model, optimizer, scheduler, epoch + 1, config, device)
            checkpoint["metrics"] = {"loss": mean_loss, "val_psnr": val_psnr}
            save_atomic(checkpoint, last)
            if config.checkpoint_every and (epoch + 1) % config.checkpoint_every == 0:
                save_atomic(checkpoint, out / f"epoch_{epoch + 1:03d}.pt")
            new_log = not log_path.exists()
            with open(log_path, "a", newline="") as f:
                row = csv.writer(f)
                if new_log:
                    row.writerow(["epoch", "loss", "lr", "val_psnr", "seconds"])
                row.writerow([epoch + 1, f"{mean_loss:.6f}", f"{epoch_lr:.6g}",
                              "" if val_psnr is None else f"{val_psnr:.4f}", f"{time.time() - epoch_start:.1f}"])
            if writer is not None:
                writer.add_scalar("loss/train", mean_loss, epoch + 1)
                if val_psnr is not None:
                    writer.add_scalar("psnr/val", val_psnr, epoch + 1)
            message = f"epoch {epoch + 1}: loss {mean_loss:.5f}" + (
                f", val PSNR {val_psnr:.2f} dB" if val_psnr is not None else "")
            if per_epoch:
                tqdm.write(message)
            budget_bar.set_postfix_str(message, refresh=False)
            done = min(time.time() - started, budget_bar.total) if config.time_limit else epoch + 1
            budget_bar.update(done - budget_bar.n)
        env.barrier()
        # Every rank stops after the same epoch: rank 0's clock decides.
        if config.time_limit and env.mean(float(env.main and time.time() - started > config.time_limit)) > 0:
            break
    budget_bar.close()
    if writer is not None:
        writer.close()
    if env.main:
        release_folder(out)
    env.close()
    return result
