"""Checkpoints: atomic writes, safe reads, models and training state.

A checkpoint is a dict of plain tensors and built-in types, read with torch's
weights-only unpickler: "model" (a DHIFNet state_dict) and "config" (at least the keys of
ModelConfig), plus, for a training run, "optimizer", "scheduler", "epoch" and "rng".
"""
import contextlib
import dataclasses
import os
from pathlib import Path

import torch

from .models import DHIFNet, ModelConfig


@contextlib.contextmanager
def atomic_file(path):
    """Yields a temporary path beside `path` to write, then renames it over `path`: a reader
    sees the old file or the new one, never half of one, whatever moment the run is killed,
    and a failed write (a full disk, a folder in the way) leaves neither a partial file nor
    the temporary one, and is one ValueError."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:  # torch reports a full disk as a RuntimeError
        raise ValueError(f"cannot write {path}: {getattr(error, 'strerror', None) or error}") from None
    finally:
        tmp.unlink(missing_ok=True)


def save_atomic(obj, path: Path):
    """torch.save through atomic_file."""
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def why_unreadable(path: Path, error: Exception) -> str:
    """What to tell a user about a file that torch.load could not read."""
    with open(path, "rb") as f:
        head = f.read(4)
    if not head:
        return "the file is empty"
    if not (head.startswith(b"PK\x03\x04") or head.startswith(b"\x80")):  # zip (torch.save) or a pickle
        return "it is not a PyTorch file"
    text = str(error).strip()
    return (text.splitlines()[0][:200] if text else type(error).__name__) + "; the file may be truncated"


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
