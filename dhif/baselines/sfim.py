"""SFIM-HS, smoothing-filter-based intensity modulation: Liu, Int. J. Remote Sensing 21(18),
2000, "Smoothing filter-based intensity modulation", for HS-MS fusion as in Yokoya,
Grohnfeldt, Chanussot, IEEE GRSM 5(2), 2017."""
import torch

from ..data.degrade import upsample_bicubic
from .observation import Observation, band_to_channel, pick_channels


# Where a channel's low-pass is below this fraction of its peak (dark regions, and the bicubic
# ringing beside them) the ratio is noise, and there the band is the upsampled HSI alone. Of
# 3e-3, 1e-2, 3e-2 and 1e-1, 1e-2 scored best on 6 CAVE training scenes at x8 and at x4 (PSNR
# +2.9 and +2.6 dB on a floor of a millionth of the peak; benchmarks/RESULTS.md).
DARK = 1e-2


def sfim(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation) -> torch.Tensor:
    """(B, C, H, W): every upsampled HSI band modulated by the ratio of its best-correlated
    MSI channel to that channel's low-pass, Z_b = up(H_b) M_k / lowpass(M_k). The low-pass
    is the observation's own blur and decimation, then the same bicubic upsampling as the
    HSI's (MTF-matched), so a band proportional to an MSI channel is recovered exactly.
    Needs the blur; meant for non-negative data (where the low-pass is under DARK of the
    channel's peak, the ratio is 1)."""
    low_msi = observation.degrade(hr_msi)
    channel = band_to_channel(lr_hsi, low_msi)
    smooth = upsample_bicubic(low_msi, observation.scale)
    floor = DARK * hr_msi.abs().amax(dim=(2, 3), keepdim=True).clamp_min(torch.finfo(hr_msi.dtype).tiny)
    ratio = torch.where(smooth > floor, hr_msi / smooth.clamp_min(floor), torch.ones_like(hr_msi))
    return upsample_bicubic(lr_hsi, observation.scale) * pick_channels(ratio, channel)
