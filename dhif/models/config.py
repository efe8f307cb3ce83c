"""The model configuration: the one list of what defines a DHIFNet's architecture. Every
checkpoint carries these keys; DHIFNet, TrainConfig and the checkpoint readers derive
from this class."""
import dataclasses


@dataclasses.dataclass
class ModelConfig:
    """Defaults are the paper's CAVE configuration (31 bands, RGB, x8)."""
    hsi_channels: int = 31
    msi_channels: int = 3
    scale: int = 8
    stages: int = 4
    taps: int = 7
    width: int = 64           # U-Net base width
    head_width: int = None    # hidden width of the filter heads; None: taps x bands
    initial_estimate: str = "bicubic"  # Z0: "bicubic" (the paper's) or "cs" (component substitution)
    sigma: float = 2.0        # the data's Gaussian PSF in HR pixels (the protocol's blur): the "cs" start's
    psf_window: int = None    # that PSF's side in HR pixels; None: scale x scale, the authors'

    @classmethod
    def keys(cls) -> tuple:
        """The model's keys (not a subclass's, such as TrainConfig's training keys)."""
        return tuple(f.name for f in dataclasses.fields(ModelConfig))

    @classmethod
    def from_dict(cls, values: dict) -> "ModelConfig":
        """The model's keys of a checkpoint's configuration (training keys are ignored)."""
        return ModelConfig(**{k: values[k] for k in cls.keys() if k in values})

    def model_dict(self) -> dict:
        """The model's keys only, also of a subclass such as TrainConfig."""
        return {k: getattr(self, k) for k in self.keys()}

    def network_dict(self) -> dict:
        """The model's keys less those of the data it met (scale and PSF): what a model
        fine-tuned on other data keeps."""
        return {k: v for k, v in self.model_dict().items() if k not in ("scale", "sigma", "psf_window")}
