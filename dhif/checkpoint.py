"""Checkpoints: atomic writes, safe reads, models and training state.

A checkpoint is a dict of plain tensors and built-in types, read with torch's
weights-only unpickler: "model" (a DHIFNet state_dict) and "config" (at least the keys of
ModelConfig), plus, for a training run, "optimizer", "scheduler", "epoch" and "rng".
"""
import dataclasses
import os
from pathlib import Path

import torch

from .models import DHIFNet, ModelConfig


def save_atomic(obj, path: Path):
    """torch.save to a temporary file in the same folder, then rename: a reader never sees
    half a checkpoint, whatever moment the run is killed."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    return torch.load(path, map_location=map_location, weights_only=True)


def model_from_checkpoint(path, device="cpu", filter_impl="auto") -> DHIFNet:
    """A DHIFNet with the weights and configuration saved by `dhif train` or `dhif convert`."""
    checkpoint = load_checkpoint(path)
    model = DHIFNet(ModelConfig.from_dict(checkpoint["config"]), filter_impl=filter_impl)
    model.load_state_dict(checkpoint["model"])
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
    """Loads training_state's dict into the run's objects; returns the epoch to start at."""
    model.load_state_dict(checkpoint["model"])
    optimizer.load_state_dict(checkpoint["optimizer"])
    scheduler.load_state_dict(checkpoint["scheduler"])
    torch.set_rng_state(checkpoint["rng"]["torch"])
    if device.type == "cuda" and "cuda" in checkpoint["rng"]:
        torch.cuda.set_rng_state(checkpoint["rng"]["cuda"], device)
    return checkpoint["epoch"]
