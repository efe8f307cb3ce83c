"""What the classical methods know of how the two images were made: the scale, the blur
(a Gaussian PSF, over a scale x scale window as the authors' protocol unless another is
given, decimation from dhif.data.degrade's decimation_start) and the spectral response,
given or estimated from the pair."""
from dataclasses import dataclass

import torch

from ..data.degrade import degrade, gaussian_psf, upsample_bicubic


SRF_SMOOTHNESS = 1e-7  # a tie-breaker: on CAVE 1e-5 already moves the Nikon response by 2%


@dataclass(frozen=True, eq=False)
class Observation:
    """scale: HR / LR size ratio; sigma: the Gaussian PSF's sigma in HR pixels; window: its
    side in HR pixels (None: scale); srf: the (channels, bands) response that makes the
    HR-MSI from the HR-HSI, or None where it is not known (real pairs): estimate_srf then
    finds it from the pair. blur_known says whether the PSF is the data's own (simulated)
    or not; then blur_how says whether it was assumed, estimated from the pair or given."""
    scale: int
    sigma: float = 2.0
    srf: torch.Tensor = None
    blur_known: bool = True
    window: int = None
    blur_how: str = "assumed"

    def psf(self) -> torch.Tensor:
        """The (window, window) PSF, float64."""
        return gaussian_psf(self.window or self.scale, self.sigma)

    @property
    def mirror_symmetric(self) -> bool:
        """Whether each LR pixel is centred on its block of HR pixels, so that a pair's patches
        flipped or turned still follow this observation. The PSF's centre is its middle index
        (window // 2) and the samples start at decimation_start: centred when the window and
        the scale are both even or both odd (the authors' scale x scale always); an odd window
        at an even scale puts it half an HR pixel off the block's centre."""
        return (self.window or self.scale) % 2 == self.scale % 2

    def degrade(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) blurred and decimated to the LR-HSI's grid."""
        return degrade(image, self.scale, self.sigma, window=self.window)

    def lowpass(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) at the LR-HSI's resolution, brought back to the HR grid the way the
        LR-HSI is (bicubic): the part of an HR image that the LR-HSI also holds."""
        return upsample_bicubic(self.degrade(image), self.scale)

    def describe(self) -> dict:
        side = self.window or self.scale
        blur = f"Gaussian PSF, sigma {self.sigma:.3g} HR pixels, {side} x {side} window"
        notes = {"assumed": " (assumed: the pair's own blur is not known)", "estimated": " (estimated from the pair)",
                 "given": " (given: --psf-sigma)"}
        return {"blur": blur + ("" if self.blur_known else notes[self.blur_how]),
                "srf": "given" if self.srf is not None else "estimated from the pair (least squares, non-negative)"}


def response(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation) -> torch.Tensor:
    """The (B, channels, bands) response: the given one for every image, else estimated."""
    if observation.srf is not None:
        srf = observation.srf.to(device=lr_hsi.device, dtype=lr_hsi.dtype)
        return srf.expand(lr_hsi.shape[0], *srf.shape)
    return estimate_srf(lr_hsi, observation.degrade(hr_msi))


def msi_in_hsi_units(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation) -> torch.Tensor:
    """The HR-MSI as the methods that weigh it against the LR-HSI see it: as given where the
    response is known (the two are then in one unit), else scaled to the LR-HSI's peak, so
    that the balance of the two images in a fit does not depend on their units."""
    if observation.srf is not None:
        return hr_msi
    tiny = torch.finfo(hr_msi.dtype).tiny
    ratio = lr_hsi.abs().flatten(1).amax(dim=1) / hr_msi.abs().flatten(1).amax(dim=1).clamp_min(tiny)
    return hr_msi * ratio[:, None, None, None]


def estimate_srf(lr_hsi: torch.Tensor, low_msi: torch.Tensor, iterations: int = 500,
                 smoothness: float = SRF_SMOOTHNESS) -> torch.Tensor:
    """The non-negative (B, channels, bands) R that best explains the degraded MSI from the
    LR-HSI, low_msi ~ R lr_hsi, by projected (accelerated) gradient on the normal equations,
    with a small penalty on R's differences between neighbouring bands (relative to the
    LR-HSI's energy: the same in any units). Degradation is spatial and the response
    spectral, so the two commute: the pair on the LR grid carries R exactly. Non-negative
    and smooth because every sensor's response is, which settles the bands that the scene's
    spectra leave ambiguous; CNMF needs it non-negative; the units of the two images are
    absorbed into R."""
    hsi, msi = lr_hsi.flatten(2).double(), low_msi.flatten(2).double()
    bands = hsi.shape[1]
    gram = hsi @ hsi.transpose(1, 2)  # (B, bands, bands)
    difference = torch.diff(torch.eye(bands, dtype=gram.dtype, device=gram.device), dim=0)  # (bands - 1, bands)
    energy = gram.diagonal(dim1=1, dim2=2).mean(dim=1)[:, None, None]
    gram = gram + smoothness * energy * (difference.T @ difference) + 1e-10 * energy * torch.eye(
        bands, dtype=gram.dtype, device=gram.device)
    target = msi @ hsi.transpose(1, 2)  # (B, channels, bands)
    step = 1 / torch.linalg.eigvalsh(gram)[:, -1].clamp_min(1e-300)[:, None, None]
    srf = torch.linalg.solve(gram, target.transpose(1, 2)).transpose(1, 2)
    srf, previous, momentum = srf.clamp_min(0), srf.clamp_min(0), srf.clamp_min(0)
    for k in range(iterations):
        srf = (momentum - step * (momentum @ gram - target)).clamp_min(0)
        momentum = srf + k / (k + 3) * (srf - previous)
        previous = srf
    return srf.to(lr_hsi.dtype)


def band_to_channel(lr_hsi: torch.Tensor, low_msi: torch.Tensor) -> torch.Tensor:
    """(B, bands) index of the MSI channel best correlated with each HSI band on the LR grid
    (the band grouping of the hypersharpening methods)."""
    hsi = _centred(lr_hsi.flatten(2).double())
    msi = _centred(low_msi.flatten(2).double())
    correlation = (hsi @ msi.transpose(1, 2)) / (hsi.norm(dim=2)[..., None] * msi.norm(dim=2)[:, None]).clamp_min(
        1e-300)
    return correlation.argmax(dim=2)


def pick_channels(image: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """(B, bands, H, W): channel index[b, c] of (B, channels, H, W) image b, for every band c."""
    return torch.gather(image, 1, index[..., None, None].expand(-1, -1, *image.shape[-2:]))


def _centred(rows: torch.Tensor) -> torch.Tensor:
    return rows - rows.mean(dim=-1, keepdim=True)
