"""What a training run is: its configuration (the model's keys and the run's), the named
recipes, the learning-rate schedule, and which settings a resumed run may change."""
import dataclasses
import math

from ..models import ModelConfig


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
    init_filters: str = "random"    # or "identity": the filters start as the identity (DHIFNet.start_filters_as_identity)
    # The data protocol, recorded in every checkpoint (with the model's sigma, the blur's).
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
# The learning rate of a short run that fine-tunes a trained model (`dhif fuse` on a pair, the
# demo's shipped model): the shipped x8 model fine-tuned on the demo's synthetic scenes
# scored 46.87 dB after 2400 steps at 2e-4, 46.22 at the demo's from-nothing 5e-4.
FINE_TUNE_LR = 2e-4


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
