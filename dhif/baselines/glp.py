"""GLP-HS, the MTF-matched generalized Laplacian pyramid with regression gains: Aiazzi,
Alparone, Baronti, Garzelli, Selva, Photogramm. Eng. Remote Sens. 72(5), 2006, "MTF-tailored
multiscale fusion of high-resolution MS and Pan imagery", for HS-MS fusion as in Selva,
Aiazzi, Butera, Chiarantini, Baronti, IEEE JSTARS 8(6), 2015, "Hyper-sharpening"."""
import torch

from ..data.degrade import upsample_bicubic
from .observation import Observation, band_to_channel, pick_channels


def glp(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation) -> torch.Tensor:
    """(B, C, H, W): every upsampled HSI band plus the detail of its best-correlated MSI
    channel, Z_b = up(H_b) + g_b (M_k - lowpass(M_k)), with the gain g_b = cov(H_b, M_k) /
    var(M_k) regressed on the LR grid. The pyramid's one level at the scale uses the
    observation's blur (MTF-matched), so a band that is an affine function of an MSI channel
    is recovered exactly. Needs the blur."""
    low_msi = observation.degrade(hr_msi)
    channel = band_to_channel(lr_hsi, low_msi)
    picked = pick_channels(low_msi, channel).flatten(2).double()
    hsi = lr_hsi.flatten(2).double()
    picked, hsi = picked - picked.mean(dim=2, keepdim=True), hsi - hsi.mean(dim=2, keepdim=True)
    gain = (picked * hsi).sum(dim=2) / picked.pow(2).sum(dim=2).clamp_min(torch.finfo(torch.float64).tiny)
    detail = pick_channels(hr_msi - upsample_bicubic(low_msi, observation.scale), channel)
    return upsample_bicubic(lr_hsi, observation.scale) + gain.to(lr_hsi.dtype)[..., None, None] * detail
