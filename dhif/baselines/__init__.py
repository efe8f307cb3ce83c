"""The classical fusion methods every results table reports beside DHIF-Net: one module a
method, each called as method(lr_hsi (B, C, h, w), hr_msi (B, m, H, W), Observation) ->
(B, C, H, W), in the inputs' units, on whatever device the inputs are."""
from dataclasses import dataclass
from typing import Callable

import torch

from ..profiling import timed_call
from .cnmf import cnmf
from .glp import glp
from .gsa import component_substitution
from .hysure import hysure
from .interpolation import bicubic
from .observation import Observation, estimate_srf
from .sfim import sfim
from .sylvester import fuse_sylvester


@dataclass(frozen=True)
class Baseline:
    name: str  # in tables and figures
    run: Callable
    needs: tuple  # of the observation: "blur", "srf"


BASELINES = {
    "bicubic": Baseline("bicubic", bicubic, ()),
    "cs": Baseline("component substitution", component_substitution, ("blur",)),
    "sfim": Baseline("SFIM-HS", sfim, ("blur",)),
    "glp": Baseline("GLP-HS", glp, ("blur",)),
    "cnmf": Baseline("CNMF", cnmf, ("blur", "srf")),
    "fuse": Baseline("FUSE", fuse_sylvester, ("blur", "srf")),
    "hysure": Baseline("HySure", hysure, ("blur", "srf")),
}
DEFAULT_BASELINES = ("bicubic", "cs")


def chosen_baselines(names) -> tuple:
    """The method keys of a --baselines list: names of BASELINES, 'all', or 'none'; one
    ValueError line naming the choices for anything else."""
    names = list(names)
    if names == ["all"]:
        return tuple(BASELINES)
    if names == ["none"]:
        return ()
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline {', '.join(unknown)}: choose from {', '.join(BASELINES)}, all or none")
    return tuple(dict.fromkeys(names))


def run_baseline(method: str, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation):
    """(result, seconds) of one method on one batch, timed to the device's completion."""
    return timed_call(BASELINES[method].run, lr_hsi, hr_msi, observation)


__all__ = ["BASELINES", "DEFAULT_BASELINES", "Baseline", "Observation", "bicubic", "chosen_baselines", "cnmf",
           "component_substitution", "estimate_srf", "fuse_sylvester", "glp", "hysure", "run_baseline", "sfim"]
