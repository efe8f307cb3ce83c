"""SFIM-HS, smoothing-filter-based intensity modulation: Liu, Int. J. Remote Sensing 21(18),
2000, "Smoothing filter-based intensity modulation", for HS-MS fusion as in Yokoya,
Grohnfeldt, Chanussot, IEEE GRSM 5(2), 2017."""
import torch

from ..data.degrade import upsample_bicubic
from .observation import Observation, band_to_channel, pick_channels


def sfim(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation) -> torch.Tensor:
    """(B, C, H, W): every upsampled HSI band modulated by the ratio of its best-correlated
    MSI channel to that channel's low-pass, Z_b = up(H_b) M_k / lowpass(M_k). The low-pass
    is the observation's own blur and decimation, then the same bicubic upsampling as the
    HSI's (MTF-matched), so a band proportional to an MSI channel is recovered exactly.
    Needs the blur; meant for non-negative data (the ratio's floor is a millionth of the
    channel's peak)."""
    low_msi = observation.degrade(hr_msi)
    channel = band_to_channel(lr_hsi, low_msi)
    smooth = upsample_bicubic(low_msi, observation.scale)
    floor = 1e-6 * hr_msi.abs().amax(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(hr_msi.dtype).tiny)
    ratio = hr_msi / torch.where(smooth.abs() < floor, floor, smooth)
    return upsample_bicubic(lr_hsi, observation.scale) * pick_channels(ratio, channel)
