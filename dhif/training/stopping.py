"""Stopping a run cleanly: Ctrl-C or SIGTERM stop it after the current step, its state is
saved mid-epoch, and the same command resumes it exactly."""
import os
import signal
import sys
import threading
from pathlib import Path

from ..checkpoint import training_state
from ..outputs import save_atomic
from .run_log import write_quietly


class TrainingInterrupted(Exception):
    """Ctrl-C or SIGTERM stopped training between two steps; the run's state is saved."""

    def __init__(self, checkpoint: Path, epoch: int, step: int, steps: int, signum: int = signal.SIGINT):
        super().__init__(f"{signal.Signals(signum).name} stopped training at epoch {epoch + 1}, step {step} of "
                         f"{steps}; the run's state is saved in {checkpoint}")
        self.checkpoint = checkpoint
        self.signum = signum


class StopRequest:
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
        write_quietly(lambda: print(f"\n{signal.Signals(signum).name}: stopping after this step (again to stop at "
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


def stop_and_save(env, model, optimizer, scheduler, epoch, config, last, total, count):
    """Rank 0 saves the state after `count` steps of `epoch` for the same command to resume;
    the saved loss total is the ranks' mean, so that the epoch's mean loss comes out the same."""
    total = env.mean(total)
    if env.main:
        state = training_state(model, optimizer, scheduler, epoch, config, env.device)
        state["interrupted"] = {"total": total, "count": count}
        save_atomic(state, last)
    env.barrier()
    env.close()
