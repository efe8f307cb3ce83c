"""Checkpoints: safe reads, models and training state.

A checkpoint is a dict of plain tensors and built-in types, read with torch's
weights-only unpickler: "model" (a DHIFNet state_dict) and "config" (at least the keys of
ModelConfig), plus, for a training run, "optimizer", "scheduler", "epoch" and "rng".
"""
import dataclasses
from pathlib import Path

import torch

from .outputs import why_unreadable
from .models import DHIFNet, ModelConfig


def load_checkpoint(path, map_location="cpu") -> dict:
    """A checkpoint written by `dhif train` or `dhif convert`, read without running pickled
    code; a ValueError that says what the file is when it is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch.load raises many types for files it cannot read
        text = str(error)
        if "HSI_Fusion" in text or "Model." in text:
            raise ValueError(f"{path} is one of the authors' pickled models, not a dhif checkpoint; convert it "
                             f"first: dhif convert {path} converted.pt") from None
        raise ValueError(f"cannot read {path} as a dhif checkpoint: {why_unreadable(path, error)}") from None
    if not isinstance(checkpoint, dict) or not {"model", "config"} <= set(checkpoint):
        raise ValueError(f"{path} is not a dhif checkpoint (no model weights and configuration in it); checkpoints "
                         "come from dhif train or dhif convert")
    return checkpoint


def model_from_checkpoint(path, device="cpu", filter_impl="auto") -> DHIFNet:
    """A DHIFNet with the weights and configuration saved by `dhif train` or `dhif convert`."""
    checkpoint = load_checkpoint(path)
    model = DHIFNet(ModelConfig.from_dict(checkpoint["config"]), filter_impl=filter_impl)
    try:
        model.load_state_dict(checkpoint["model"])
    except RuntimeError as error:
        raise ValueError(f"the weights in {path} do not fit its configuration: "
                         f"{str(error).splitlines()[0]}") from None
    return model.to(device).eval()


def training_state(model, optimizer, scheduler, epoch: int, config, device: torch.device) -> dict:
    """Everything a run needs to continue exactly: weights, optimizer and schedule, the
    epoch reached, the random generators and the configuration (a dataclass)."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
            "epoch": epoch, "rng": rng, "config": dataclasses.asdict(config)}


def restore_training_state(checkpoint: dict, model, optimizer, scheduler, device: torch.device) -> int:
    """Loads training_state's dict into the run's objects; returns the epoch to start at
    (for a checkpoint saved mid-epoch, that epoch; its "interrupted" entry says where)."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if device.type == "cuda" and "cuda" in checkpoint["rng"]:
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
    return checkpoint["epoch"]
