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
import math
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

from .checkpoint import load_checkpoint, restore_training_state, training_state
from .devices import has_native_bf16, pick_device
from .outputs import claim_output, release_folder, save_atomic
from .data import SceneDataset
from .models import DHIFNet, ModelConfig
from .models.physics import init_observation_operators


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
    val_tile: object = "auto"    # HR tile size for whole validation scenes: pixels, 0 (whole) or auto
    tensorboard: bool = False
    time_limit: float = None     # seconds; stop after the epoch that crosses it
    checkpoint_every: int = 0    # also keep epoch_NNN.pt every N epochs (0: only last.pt)
    init_operators: str = "random"  # or "physics": R, B from the known response and blur
    # The data protocol, recorded in every checkpoint (sigma above is the blur's).
    data: str = None             # the dataset folder (--cave or --data)
    scaling: str = "as-read"     # a key of dhif.data.scenes.SCALINGS
    srf: str = "nikon_d700"      # the spectral response: a name or a file
    train_scenes: list = None

    @classmethod
    def from_preset(cls, name: str = "paper") -> "TrainConfig":
        """A named recipe's configuration (PRESETS); the paper's by default."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
        return cls(**PRESETS[name])


# Named recipes: TrainConfig fields that differ from the paper's. "cpu" is measured in
# benchmarks/RESULTS.md (the learning curve): what a 2-core machine trains in two hours.
PRESETS = {
    "paper": {},
    "cpu": dict(stages=1, width=16, head_width=32, initial_estimate="cs", init_operators="physics", patch=32,
                batch_size=4, samples_per_epoch=2000, epochs=50, lr=5e-4, lr_decay=0.9, lr_decay_every=5,
                lr_decay_until=70, workers=0, val_every=5),  # the rate decays through the whole run
}


# A run counted in steps (the demo's, and fuse's on a pair): short epochs of 8 steps.
SHORT_RUN_SAMPLES, SHORT_RUN_BATCH = 32, 4
SHORT_RUN_STEPS_PER_EPOCH = SHORT_RUN_SAMPLES // SHORT_RUN_BATCH


def short_run_config(out, steps: int = None, **fields) -> TrainConfig:
    """A TrainConfig of `steps` steps (rounded up to whole short epochs; None: no step
    budget, for a time limit) at a constant learning rate, without validation or DataLoader
    processes; `fields` set the rest (model, patch, lr, seed, ...)."""
    epochs = math.ceil(steps / SHORT_RUN_STEPS_PER_EPOCH) if steps else 1_000_000
    return TrainConfig(out=str(out), epochs=epochs, samples_per_epoch=SHORT_RUN_SAMPLES, batch_size=SHORT_RUN_BATCH,
                       lr_decay_until=0, val_every=0, workers=0, **fields)


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
    from .inference import reconstruct_image, resolve_tile
    from .metrics import psnr

    dataset = SceneDataset(scenes, config.scale, srf, config.sigma)

    def validate(model, device) -> float:
        model.eval()
        values = []
        with torch.no_grad():
            for lr, msi, hr, _ in dataset:
                lr, msi = lr[None].to(device), msi[None].to(device)
                pred = reconstruct_image(model, lr, msi, resolve_tile(config.val_tile, model, lr, msi)[0])
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


class _RunLog:
    """What a run reports: log.csv, TensorBoard, and the progress bars. A time-budgeted run
    (fuse) shows one bar over its budget, a run of short epochs (the demo's) one bar over
    its epochs; a run of long epochs shows one bar per epoch and a line after each."""

    def __init__(self, out: Path, config: TrainConfig, main: bool, progress: bool, steps_per_epoch: int,
                 start_epoch: int):
        self.path, self.main = out / "log.csv", main
        self.writer = None
        if config.tensorboard and main:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(out / "tensorboard")
        self.time_limit, self.started = config.time_limit, time.time()
        whole_run = progress and main and bool(config.time_limit or steps_per_epoch < 50)
        self.per_epoch = progress and main and not whole_run
        self.bar = tqdm(total=round(config.time_limit) if config.time_limit else config.epochs,
                        initial=0 if config.time_limit else start_epoch, desc="training", disable=not whole_run,
                        bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} "
                                   + ("s" if config.time_limit else "epochs") + "{postfix}")

    def epoch_bar(self, batches, epoch: int, epochs: int):
        return tqdm(batches, desc=f"epoch {epoch + 1}/{epochs}", disable=not self.per_epoch, leave=False)

    def epoch_done(self, epoch: int, loss: float, lr: float, val_psnr, seconds: float, other_seconds: float):
        """seconds: the epoch's training steps; other_seconds: its validation and checkpoint."""
        new_log = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            row = csv.writer(f)
            if new_log:
                row.writerow(["epoch", "loss", "lr", "val_psnr", "seconds", "other_seconds"])
            row.writerow([epoch + 1, f"{loss:.6f}", f"{lr:.6g}", "" if val_psnr is None else f"{val_psnr:.4f}",
                          f"{seconds:.1f}", f"{other_seconds:.1f}"])
        if self.writer is not None:
            self.writer.add_scalar("loss/train", loss, epoch + 1)
            if val_psnr is not None:
                self.writer.add_scalar("psnr/val", val_psnr, epoch + 1)
        message = f"epoch {epoch + 1}: loss {loss:.5f}" + (
            f", val PSNR {val_psnr:.2f} dB" if val_psnr is not None else "")
        if self.per_epoch:
            tqdm.write(message)
        self.bar.set_postfix_str(message, refresh=False)
        done = min(time.time() - self.started, self.bar.total) if self.time_limit else epoch + 1
        self.bar.update(done - self.bar.n)

    def close(self, quietly: bool = False):
        """quietly: the terminal may be gone (Ctrl-C in a pipe)."""
        _quietly(self.bar.close) if quietly else self.bar.close()
        if self.writer is not None:
            self.writer.close()


class _TrainingRun:
    """One call of train(), as named steps: build, resume, the loaders, then epochs of steps."""

    def __init__(self, config: TrainConfig, dataset, validate, srf, progress: bool):
        self.config, self.dataset, self.validate, self.progress = config, dataset, validate, progress
        self.out = Path(config.out)
        self.last = self.out / "last.pt"
        self.env = _Distributed(pick_device(config.device))
        self.device = self.env.device
        torch.manual_seed(config.seed)
        self.model = DHIFNet(config, filter_impl=config.filter_impl).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(config))
        if config.init_operators == "physics":
            init_observation_operators(self.model, srf, config.sigma)
        if config.bf16 and not has_native_bf16(self.device):
            warnings.warn(f"dhif train: bf16 autocast on {self.device} without native bf16 arithmetic is slower "
                          "than float32", RuntimeWarning, stacklevel=3)
        self.start_epoch, self.finished, self.interrupted = 0, {}, None

    def resume(self, apply_changes: bool):
        """Continues from <out>/last.pt where there is one, refusing changed settings unless
        apply_changes (the model's own keys never change)."""
        if not self.last.exists():
            return
        config = self.config
        checkpoint = load_checkpoint(self.last, map_location=self.device)
        changes = configuration_changes(checkpoint["config"], config)
        described = ", ".join(f"{k} {a} -> {b}" for k, (a, b) in changes.items())
        fixed = sorted(set(changes) & set(ModelConfig.keys()))
        if fixed or (changes and not apply_changes):
            raise ValueError(f"{self.last} was trained with other settings ({described}); resume with the same "
                             "settings" + ("" if fixed else ", or pass --apply-changes to continue with the new ones")
                             + ", or choose another --out")
        self.start_epoch = restore_training_state(checkpoint, self.model, self.optimizer, self.scheduler, self.device)
        self.finished = checkpoint.get("metrics", {})
        self.interrupted = checkpoint.get("interrupted")
        if changes:
            _apply_changes(config, self.optimizer, self.scheduler)
        if self.env.main:
            at = (f"epoch {self.start_epoch + 1}, step {self.interrupted['count'] + 1}" if self.interrupted
                  else f"epoch {self.start_epoch}")
            print(f"resuming {self.last} at {at}" + (f", applying {described}" if changes else ""), flush=True)
            if self.start_epoch >= config.epochs:
                print(f"{self.last} has already been trained for {self.start_epoch} epochs (--epochs "
                      f"{config.epochs})", flush=True)

    def make_loader(self):
        """DDP where torchrun started this process; samples are already random functions of
        (seed, epoch, index), so nothing is shuffled."""
        self.wrapped = self.model
        if self.env.world > 1:
            self.wrapped = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.sampler = DistributedSampler(self.dataset, shuffle=False) if self.env.world > 1 else None
        self.loader = self._loader(self.sampler)

    def _loader(self, sampler, persistent: bool = True):
        workers = self.config.workers
        return DataLoader(self.dataset, batch_size=self.config.batch_size, sampler=sampler, num_workers=workers,
                          drop_last=True, persistent_workers=persistent and workers > 0,
                          worker_init_fn=_StopRequest.ignore_in_worker)

    def batches(self, epoch: int):
        """The epoch's batches; for the epoch that Ctrl-C stopped, this rank's samples from
        the first step not taken (its shard under DDP)."""
        self.dataset.set_epoch(epoch)
        if self.sampler is not None:
            self.sampler.set_epoch(epoch)
        if epoch != self.start_epoch or not self.interrupted:
            return self.loader, 0.0, 0
        total, count = self.interrupted["total"], self.interrupted["count"]
        order = list(self.sampler if self.sampler is not None else range(len(self.dataset)))
        return self._loader(order[count * self.config.batch_size:], persistent=False), total, count

    def run_epoch(self, epoch: int, stop: "_StopRequest", estimate: "_LongRunEstimate", log: _RunLog) -> float:
        """The epoch's steps; returns the ranks' mean loss. Under torchrun every rank stops
        after the same step and rank 0 saves, before anything is written to a terminal or
        pipe that the same Ctrl-C may have closed."""
        config, env = self.config, self.env
        batches, total, count = self.batches(epoch)
        started = time.time()
        bar = log.epoch_bar(batches, epoch, config.epochs)
        with stop:
            for lr_hsi, hr_msi, hr_hsi in bar:
                loss = train_step(self.wrapped, self.optimizer, lr_hsi.to(self.device), hr_msi.to(self.device),
                                  hr_hsi.to(self.device), config.bf16)
                total, count = total + loss.item(), count + 1
                if env.any(stop.requested):
                    _stop_and_save(env, self.model, self.optimizer, self.scheduler, epoch, config, self.last, total,
                                   count)
                    _quietly(bar.close)
                    log.close(quietly=True)
                    raise TrainingInterrupted(self.last, epoch, count, len(self.loader),
                                              stop.signum or signal.SIGTERM)
                rate = count * config.batch_size * env.world / (time.time() - started)
                bar.set_postfix(loss=f"{total / count:.5f}", samples_per_s=f"{rate:.1f}")
                if env.main and self.progress and not config.time_limit:  # a time budget ends on time
                    estimate.step((config.epochs - epoch) * len(self.loader) - count)
        return env.mean(total / max(count, 1))

    def save(self, epoch: int, loss: float, val_psnr):
        checkpoint = training_state(self.model, self.optimizer, self.scheduler, epoch + 1, self.config, self.device)
        checkpoint["metrics"] = {"loss": loss, "val_psnr": val_psnr}
        save_atomic(checkpoint, self.last)
        if self.config.checkpoint_every and (epoch + 1) % self.config.checkpoint_every == 0:
            save_atomic(checkpoint, self.out / f"epoch_{epoch + 1:03d}.pt")


def train(config: TrainConfig, dataset, validate=None, srf: torch.Tensor = None, progress: bool = True,
          apply_changes: bool = False) -> dict:
    """Trains (or resumes from <out>/last.pt) a DHIFNet on a dataset of (lr_hsi, hr_msi,
    hr_hsi) samples that has set_epoch (PatchDataset). validate(model, device) -> PSNR runs
    every config.val_every epochs. srf is needed for init_operators='physics'. A resume
    refuses a configuration that differs from the checkpoint's, naming the keys, unless
    apply_changes (then the new values apply from the resumed epoch on; the model's own
    keys can never change). Returns {'epoch', 'loss', 'val_psnr', 'checkpoint'}."""
    run = _TrainingRun(config, dataset, validate, srf, progress)
    run.resume(apply_changes)
    run.make_loader()
    env = run.env
    if env.main:
        claim_output(run.out, (), overwrite=False)  # an unwritable folder fails now, not after the first epoch
    log = _RunLog(run.out, config, env.main, progress, len(run.loader), run.start_epoch)
    result = {"epoch": run.start_epoch, "loss": run.finished.get("loss"), "val_psnr": run.finished.get("val_psnr"),
              "checkpoint": str(run.last)}
    run.model.train()
    stop, estimate = _StopRequest(), _LongRunEstimate(run.device)
    for epoch in range(run.start_epoch, config.epochs):
        epoch_start, epoch_lr = time.time(), run.scheduler.get_last_lr()[0]  # the rate of this epoch's steps
        mean_loss = run.run_epoch(epoch, stop, estimate, log)
        run.scheduler.step()
        val_psnr, trained_for = None, time.time() - epoch_start
        if validate and env.main and config.val_every and (epoch + 1) % config.val_every == 0:
            val_psnr = validate(run.model, run.device)
        result.update(epoch=epoch + 1, loss=mean_loss, val_psnr=val_psnr)
        if env.main:
            run.save(epoch, mean_loss, val_psnr)
            log.epoch_done(epoch, mean_loss, epoch_lr, val_psnr, trained_for, time.time() - epoch_start - trained_for)
        env.barrier()
        # Every rank stops after the same epoch: rank 0's clock decides.
        if config.time_limit and env.mean(float(env.main and time.time() - log.started > config.time_limit)) > 0:
            break
    log.close()
    if env.main:
        release_folder(run.out)
    env.close()
    return result
