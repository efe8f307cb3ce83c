"""What a run reports while it trains: log.csv, TensorBoard, the progress bars, and the
estimate of a long run's time."""
import csv
import time
from pathlib import Path

from tqdm import tqdm

from .config import TrainConfig


def write_quietly(write):
    """write(), where the terminal or pipe may be gone."""
    try:
        write()
    except (OSError, ValueError):  # a closed terminal or pipe
        pass


class RunLog:
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
                                   + ("s" if config.time_limit else "epochs")
                                   + " [{elapsed} elapsed, {remaining} left]{postfix}")

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
        write_quietly(self.bar.close) if quietly else self.bar.close()
        if self.writer is not None:
            self.writer.close()


class LongRunEstimate:
    """Says once, some steps in, how long the run will take when that is more than
    LONG_RUN_S (the paper's protocol on a CPU: about a day per epoch), so that nobody waits
    a day without a word. The time per step is the mean over at least MEASURED_STEPS steps
    and MEASURED_S seconds after the first, which warms up: a few steps alone can be off
    by several times."""

    LONG_RUN_S = 3600
    MEASURED_STEPS = 10
    MEASURED_S = 30

    def __init__(self, device):
        self.device, self.steps, self.since, self.said = device, -1, None, False

    def step(self, remaining_steps: int):
        self.steps += 1
        if self.steps == 0:  # the first step warms up: measured from its end
            self.since = time.time()
        elif not self.said and self.steps >= self.MEASURED_STEPS and time.time() - self.since >= self.MEASURED_S:
            self.said = True
            per_step = (time.time() - self.since) / self.steps
            seconds = per_step * remaining_steps
            if seconds > self.LONG_RUN_S:
                tqdm.write(f"dhif train: this run needs about {seconds / 3600:.1f} hours more on {self.device} "
                           f"({per_step:.2f} s per step, {remaining_steps} steps to go); fewer --epochs or "
                           "--samples, or a GPU, shorten it")
