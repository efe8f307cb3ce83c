"""The training loop (the paper's protocol by default, resumable, single process or DDP).

The loop writes a checkpoint (dhif.checkpoint.training_state) atomically to <out>/last.pt
after every epoch, and after the current step when Ctrl-C stops it, so that a run
resumes where it stopped (a killed one from the last finished epoch) and continues
exactly as an uninterrupted run would: the training samples of epoch e are a pure
function of (seed, e, index).
"""
import dataclasses
import signal
import time
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from ..checkpoint import load_checkpoint, restore_training_state, training_state
from ..devices import has_native_bf16, pick_device
from ..models import DHIFNet, ModelConfig
from ..models.physics import init_observation_operators
from ..outputs import claim_output, release_folder, save_atomic
from .config import TrainConfig, configuration_changes, lr_factor
from .distributed import Distributed
from .run_log import LongRunEstimate, RunLog, write_quietly
from .stopping import StopRequest, TrainingInterrupted, stop_and_save


def train_step(model, optimizer, lr_hsi, hr_msi, hr_hsi, bf16: bool = False, start=None) -> torch.Tensor:
    """One optimisation step of the L1 loss, the authors' objective; returns the loss.
    bf16: the forward under bfloat16 autocast (the loss in float32). start: the samples'
    initial estimates, where the dataset gives them (PatchDataset's start)."""
    with torch.autocast(lr_hsi.device.type, dtype=torch.bfloat16, enabled=bf16):
        pred = model(lr_hsi, hr_msi, start)
    loss = F.l1_loss(pred.float(), hr_hsi)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def _apply_changes(config: TrainConfig, optimizer, scheduler):
    """The new learning rate and schedule take effect from the epoch the run resumes at;
    patch, samples, seed and the rest reach the dataset and the loop through config."""
    for group in optimizer.param_groups:
        group["initial_lr"] = config.lr
    scheduler.base_lrs = [config.lr] * len(optimizer.param_groups)
    for group, factor in zip(optimizer.param_groups, scheduler.lr_lambdas):
        group["lr"] = config.lr * factor(scheduler.last_epoch)


class _TrainingRun:
    """One call of train(), as named steps: build, resume, the loaders, then epochs of steps."""

    def __init__(self, config: TrainConfig, dataset, validate, srf, progress: bool, initial_weights=None):
        self.config, self.dataset, self.validate, self.progress = config, dataset, validate, progress
        self.out = Path(config.out)
        self.last = self.out / "last.pt"
        self.env = Distributed(pick_device(config.device))
        self.device = self.env.device
        torch.manual_seed(config.seed)
        self.model = DHIFNet(config, filter_impl=config.filter_impl).to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, betas=(0.9, 0.999), eps=1e-8)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_factor(config))
        if initial_weights is not None:  # fine-tuning a trained model
            self.model.load_state_dict(initial_weights)
        else:
            if config.init_operators == "physics":
                init_observation_operators(self.model, srf, config.sigma, config.psf_window)
            if config.init_filters == "identity":
                self.model.start_filters_as_identity()
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
                          worker_init_fn=StopRequest.ignore_in_worker)

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

    def run_epoch(self, epoch: int, stop: "StopRequest", estimate: "LongRunEstimate", log: RunLog) -> float:
        """The epoch's steps; returns the ranks' mean loss. Under torchrun every rank stops
        after the same step and rank 0 saves, before anything is written to a terminal or
        pipe that the same Ctrl-C may have closed."""
        config, env = self.config, self.env
        batches, total, count = self.batches(epoch)
        started = time.time()
        bar = log.epoch_bar(batches, epoch, config.epochs)
        with stop:
            for sample in bar:
                lr_hsi, hr_msi, hr_hsi, *start = (t.to(self.device) for t in sample)
                loss = train_step(self.wrapped, self.optimizer, lr_hsi, hr_msi, hr_hsi, config.bf16, *start)
                total, count = total + loss.item(), count + 1
                if env.any(stop.requested):
                    stop_and_save(env, self.model, self.optimizer, self.scheduler, epoch, config, self.last, total,
                                   count)
                    write_quietly(bar.close)
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


@dataclasses.dataclass
class TrainingResult:
    """Where a run ended: its epoch, last mean loss and validation PSNR, its checkpoint,
    and the trained network itself (in eval mode), so that a caller need not read it back."""
    epoch: int
    loss: float
    val_psnr: float
    checkpoint: str
    model: torch.nn.Module

    def summary(self) -> dict:
        """Everything but the model, for printing as JSON."""
        return {"epoch": self.epoch, "loss": self.loss, "val_psnr": self.val_psnr, "checkpoint": self.checkpoint}


def train(config: TrainConfig, dataset, validate=None, srf: torch.Tensor = None, progress: bool = True,
          apply_changes: bool = False, initial_weights: dict = None) -> TrainingResult:
    """Trains (or resumes from <out>/last.pt) a DHIFNet on a dataset of (lr_hsi, hr_msi,
    hr_hsi) samples that has set_epoch (PatchDataset). validate(model, device) -> PSNR runs
    every config.val_every epochs. srf is needed for init_operators='physics'. A resume
    refuses a configuration that differs from the checkpoint's, naming the keys, unless
    apply_changes (then the new values apply from the resumed epoch on; the model's own
    keys can never change). initial_weights: a state_dict that the model starts from instead
    (fine-tuning; its configuration's model keys must be config's)."""
    run = _TrainingRun(config, dataset, validate, srf, progress, initial_weights)
    run.resume(apply_changes)
    run.make_loader()
    env = run.env
    if env.main:
        claim_output(run.out, (), overwrite=False)  # an unwritable folder fails now, not after the first epoch
    log = RunLog(run.out, config, env.main, progress, len(run.loader), run.start_epoch)
    result = TrainingResult(run.start_epoch, run.finished.get("loss"), run.finished.get("val_psnr"), str(run.last),
                            run.model)
    run.model.train()
    stop, estimate = StopRequest(), LongRunEstimate(run.device)
    for epoch in range(run.start_epoch, config.epochs):
        epoch_start, epoch_lr = time.time(), run.optimizer.param_groups[0]["lr"]  # this epoch's rate
        mean_loss = run.run_epoch(epoch, stop, estimate, log)
        run.scheduler.step()
        val_psnr, trained_for = None, time.time() - epoch_start
        if validate and env.main and config.val_every and (epoch + 1) % config.val_every == 0:
            val_psnr = validate(run.model, run.device)
        result.epoch, result.loss, result.val_psnr = epoch + 1, mean_loss, val_psnr
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
    run.model.eval()
    return result
