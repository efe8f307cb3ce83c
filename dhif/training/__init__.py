"""Training DHIF-Net: the configuration and recipes (config.py), the loop (loop.py), stopping
and resuming (stopping.py), DDP (distributed.py), and what a run reports (run_log.py)."""
from .config import (FINE_TUNE_LR, PRESETS, RESUME_FREE, SHORT_RUN_STEPS_PER_EPOCH, TrainConfig,
                     configuration_changes, lr_factor, short_run_config)
from .loop import TrainingResult, train, train_step
from .stopping import TrainingInterrupted

__all__ = ["FINE_TUNE_LR", "PRESETS", "RESUME_FREE", "SHORT_RUN_STEPS_PER_EPOCH", "TrainConfig",
           "TrainingInterrupted", "TrainingResult", "configuration_changes", "lr_factor", "short_run_config", "train",
           "train_step"]
