"""The authors' checkpoints -> DHIFNet state_dicts.

Their released files are whole pickled models (`torch.save(model)`) that refer to their
`Model.HSI_Fusion`, `Model.Encoder` and `Model.Decoder` classes. They are read here with
torch's weights-only unpickler, which admits only an explicit list of types: stand-in
classes under those three names and the torch.nn modules such a file holds. No code from
the file runs, and the authors' source tree is not needed.
"""
import dataclasses
import re
from pathlib import Path

import torch
import torch.nn as nn

from ..outputs import save_atomic, why_unreadable
from .config import ModelConfig
from .dhif_net import DHIFNet

_STAGE_SCALAR = re.compile(r"(lamda|eta)_(\d+)")
_PREFIXES = [
    (re.compile(r"RT\."), "spectral_up."),
    (re.compile(r"R\."), "spectral_down."),
    (re.compile(r"BT\."), "spatial_up."),
    (re.compile(r"B\."), "spatial_down."),
    (re.compile(r"conv\."), "embed."),
    (re.compile(r"Den_con(\d+)\."), lambda m: f"dense.{int(m.group(1)) - 1}."),
    (re.compile(r"Encoder\.E(\d+)\."), lambda m: f"filters.encoder.{int(m.group(1)) - 1}."),
    (re.compile(r"Decoder\.D(\d+)\."), lambda m: f"filters.decoder.{int(m.group(1)) - 1}."),
    (re.compile(r"Decoder\.K_(\d+)\."), lambda m: f"filters.heads.{int(m.group(1)) - 1}."),
]


def convert_original_state_dict(state_dict: dict) -> dict:
    """Maps the authors' parameter names (and per-stage scalars) to DHIFNet's.

    `module.` prefixes (DataParallel) are dropped. Unknown names raise a ValueError.
    """
    converted, scalars = {}, {"lamda": {}, "eta": {}}
    for key, value in state_dict.items():
        key = key[len("module."):] if key.startswith("module.") else key
        match = _STAGE_SCALAR.fullmatch(key)
        if match:
            scalars[match.group(1)][int(match.group(2))] = value.reshape(())
            continue
        for pattern, replacement in _PREFIXES:
            if pattern.match(key):
                converted[pattern.sub(replacement, key, count=1)] = value
                break
        else:
            raise ValueError(f"convert_original_state_dict: unexpected parameter {key!r}; is this a DHIF-Net "
                             "checkpoint from the authors' CAVE code?")
    stages = sorted(scalars["eta"])
    if not stages or stages != list(range(len(stages))) or sorted(scalars["lamda"]) != stages:
        raise ValueError(f"convert_original_state_dict: per-stage scalars are incomplete: eta for stages "
                         f"{sorted(scalars['eta'])}, lamda for stages {sorted(scalars['lamda'])}")
    converted["eta"] = torch.stack([scalars["eta"][t] for t in stages])
    converted["lam"] = torch.stack([scalars["lamda"][t] for t in stages])
    return converted


def infer_config(state_dict: dict) -> ModelConfig:
    """The model configuration that fits a converted state_dict."""
    try:
        return _infer_config(state_dict)
    except KeyError as missing:
        raise ValueError(f"the checkpoint has no parameter {missing}: it is not a complete DHIF-Net") from None


def _infer_config(state_dict: dict) -> ModelConfig:
    hsi = state_dict["spectral_up.0.weight"].shape[0]
    down = sorted(k for k in state_dict if k.startswith("spatial_down.") and k.endswith(".weight"))
    scale = 1
    for key in down:
        scale *= state_dict[key].shape[-1] - (4 if state_dict[key].shape[-1] == 12 else 2)
    head = state_dict["filters.heads.0.4.weight"]
    hidden = state_dict["filters.heads.0.0.weight"].shape[0]
    return ModelConfig(hsi_channels=hsi, msi_channels=state_dict["spectral_down.0.weight"].shape[0], scale=scale,
                       stages=state_dict["eta"].shape[0], taps=head.shape[0] // hsi,
                       width=state_dict["embed.weight"].shape[0],
                       head_width=None if hidden == head.shape[0] else hidden)


class _PickledModule(nn.Module):
    """Stand-in for a class of the authors' code: holds the pickled attributes, runs nothing."""

    def forward(self, *args):
        raise RuntimeError("a module restored from the authors' pickle is for reading weights only")


def _stand_in(module: str, name: str) -> type:
    return type(name, (_PickledModule,), {"__module__": module, "__qualname__": name})


_AUTHORS_CLASSES = [_stand_in("Model", name) for name in ("HSI_Fusion", "Encoder", "Decoder")]
_TORCH_CLASSES = [nn.Conv2d, nn.ConvTranspose2d, nn.Sequential, nn.ReLU, nn.LeakyReLU, nn.ModuleList,
                  nn.parallel.DataParallel, set, torch.device]


def load_original_checkpoint(path) -> dict:
    """The authors' parameters from one of their checkpoint files, as a plain state_dict.

    Accepts a whole pickled model (their release format, possibly DataParallel-wrapped)
    or a state_dict. Tensors are loaded onto the CPU.
    """
    if not Path(path).is_file():
        raise FileNotFoundError(f"file not found: {path}")
    with torch.serialization.safe_globals(_AUTHORS_CLASSES + _TORCH_CLASSES):
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # the weights-only unpickler names what it refused
            raise ValueError(f"cannot read {path} as a DHIF-Net checkpoint without running pickled code: "
                             f"{why_unreadable(path, error)}") from None
    if isinstance(obj, nn.Module):
        try:
            return obj.state_dict()
        except RecursionError:  # a module that contains itself
            raise ValueError(f"{path} holds a module that contains itself; it is not a DHIF-Net model") from None
    if isinstance(obj, dict):
        state = obj.get("state_dict", obj.get("model", obj))
        if isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values()):
            return state
    raise ValueError(f"{path} holds a {type(obj).__name__}, not a DHIF-Net model or state_dict")


def convert_checkpoint(source, target, overwrite: bool = False) -> ModelConfig:
    """The authors' file `source` written as a weights-only dhif checkpoint `target`
    ({'model', 'config', 'source'}); refuses a target that is a folder, the source itself,
    or an existing file unless overwrite. Returns the model's configuration."""
    source, target = Path(source), Path(target)
    if target.is_dir():
        raise ValueError(f"{target} is a folder; give the checkpoint's file name, e.g. {target / 'converted.pt'}")
    if target.exists() and source.exists() and target.resolve() == source.resolve():
        raise ValueError(f"{target} is the input file itself; write the converted checkpoint to another file")
    if target.exists() and not overwrite:
        raise ValueError(f"{target} exists; pass --overwrite to replace it, or choose another output file")
    state = convert_original_state_dict(load_original_checkpoint(source))
    config = infer_config(state)
    DHIFNet(config).load_state_dict(state, strict=True)  # refuses anything that does not fit
    target.parent.mkdir(parents=True, exist_ok=True)
    save_atomic({"model": state, "config": dataclasses.asdict(config), "source": str(source)}, target)
    return config
