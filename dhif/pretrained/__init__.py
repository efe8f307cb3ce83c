"""The models that ship with dhif: small DHIF-Nets trained with `dhif train --preset cpu` on
CAVE, one per scale (the commands, the data and their scores: the README, "A model trained on
the CPU, shipped").

Each cave_x{scale}_cpu.pt has a .json beside it: how it was made, and a fingerprint (its
output on a generated scene), which tests compare with what the file gives today.
"""
import json
from importlib import resources

from ..checkpoint import model_from_checkpoint

SHIPPED_SCALES = (4, 8, 16)


def _shipped(scale: int, suffix: str):
    if scale not in SHIPPED_SCALES:
        raise ValueError(f"dhif ships no model for x{scale}; shipped: {', '.join(f'x{s}' for s in SHIPPED_SCALES)}. "
                         f"Train one with dhif train --scale {scale}")
    return resources.files(__name__) / f"cave_x{scale}_cpu{suffix}"


def pretrained_path(scale: int = 8):
    """The shipped checkpoint for `scale` (weights and configuration only, read weights-only);
    a one-line ValueError for a scale that no shipped model covers."""
    return _shipped(scale, ".pt")


def pretrained_record(scale: int = 8) -> dict:
    """How the shipped model for `scale` was made (command, data, training time, held-out
    scores) and its fingerprint."""
    return json.loads(_shipped(scale, ".json").read_text())


def pretrained_model(scale: int = 8, *, device="cpu", filter_impl: str = "auto"):
    """The shipped DHIFNet for `scale`, on `device`, in eval mode: model(lr_hsi, hr_msi) with
    a 31-band LR-HSI in [0, 1] at 1/scale of an RGB image's size (the Nikon D700's response)."""
    return model_from_checkpoint(pretrained_path(scale), device, filter_impl)


def fingerprint(model) -> dict:
    """The model's output on a generated scene (64 x 64 at the model's scale, the Nikon D700's
    RGB): its mean, standard deviation and a few voxels, to tell whether a file or the code
    changed it."""
    import torch

    from ..data import degrade, spectral_response, to_msi
    from ..data.synthetic import synthetic_scene

    scene = synthetic_scene(64, seed=0)
    lr_hsi, hr_msi = degrade(scene, model.scale), to_msi(scene, spectral_response("nikon_d700"))
    device = next(model.parameters()).device
    with torch.no_grad():
        out = model(lr_hsi[None].to(device), hr_msi[None].to(device))[0].double().cpu()
    voxels = [(0, 5, 7), (10, 31, 40), (20, 63, 0), (30, 48, 60)]
    return {"mean": out.mean().item(), "std": out.std().item(), "voxels": [[*v, out[v].item()] for v in voxels]}
