"""Bicubic upsampling of the LR-HSI alone: the floor every fusion method must clear."""
import torch

from ..data.degrade import upsample_bicubic
from .observation import Observation


def bicubic(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation) -> torch.Tensor:
    """(B, C, H, W): the LR-HSI upsampled (align_corners=False); the MSI is not used."""
    return upsample_bicubic(lr_hsi, observation.scale)
