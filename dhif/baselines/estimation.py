"""The observation of a real pair estimated from the pair itself: the Gaussian PSF's sigma
and support, and the spectral response, jointly.

Blur and decimation act on space and the response on the spectrum, so they commute: the
response applied to the LR-HSI equals the HR-MSI blurred and decimated by the LR-HSI's PSF
(Simoes et al., "A convex formulation for hyperspectral image superresolution via
subspace-based regularization", IEEE TGRS 53(6), 2015, eq. 17; Yokoya et al.'s toolbox
estimates both from that relation as well). For each candidate PSF the response is the
non-negative, smooth least-squares fit of the HR-MSI so degraded from the LR-HSI, and the
PSF kept is the one whose fit leaves the smallest residual: one-dimensional searches over
sigma, for a PSF over the authors' scale x scale window and for one over its whole support
(6 sigma + 1 pixels), since a sensor's PSF spreads over neighbouring LR pixels.
"""
import math
from dataclasses import dataclass

import torch

from ..data.degrade import degrade
from .observation import Observation, estimate_srf

ASSUMED_SIGMA = 2.0  # the authors' protocol, assumed where nothing better is known
SIGMA_RANGE = (0.25, 1.0)  # in HR pixels: from 0.25 to the scale (one LR pixel: a sensor badly out of focus)
GOLDEN = (math.sqrt(5) - 1) / 2


def full_support(sigma: float, reach: float = 3.0) -> int:
    """The odd side that holds a Gaussian PSF to `reach` sigmas each way."""
    return 2 * math.ceil(reach * sigma) + 1


@dataclass(frozen=True)
class ObservationEstimate:
    """What estimate_observation found: sigma (HR pixels), window (the PSF's side, HR
    pixels), srf ((channels, bands), in the units of the inputs it was fitted on),
    residual (relative RMS of srf x LR-HSI against the degraded HR-MSI on the LR pixels it
    used) and, for comparison, the same at the assumed PSF (sigma 2, scale x scale)."""
    scale: int
    sigma: float
    window: int
    srf: torch.Tensor
    residual: float
    assumed_residual: float
    how: str = "estimated"  # "given" (--psf-sigma), or "assumed" where the fit wanted the widest PSF searched
    at_limit: bool = False  # the fit wants the widest PSF searched: the model does not explain the pair

    def observation(self) -> Observation:
        """The Observation the methods use: this PSF; the response estimated by each method
        from the pair in the units it is given (the same least squares as here)."""
        return Observation(self.scale, self.sigma, window=self.window, blur_known=False, blur_how=self.how)

    def describe(self) -> dict:
        return {"psf": {"how": self.how, "shape": "Gaussian", "sigma_hr_pixels": round(self.sigma, 4),
                        "window_hr_pixels": self.window},
                "srf": {"how": "estimated", "values": [[round(float(v), 6) for v in row] for row in self.srf]},
                "at_search_limit": self.at_limit, "fit_residual": round(self.residual, 6),
                "fit_residual_assumed_psf": round(self.assumed_residual, 6),
                "residual_meaning": "relative RMS of the response applied to the LR-HSI against the HR-MSI "
                                    "blurred and decimated by the PSF, on interior LR pixels with data"}


def _interior(lr_size: tuple, bands: int, lr_valid, margin: int) -> torch.Tensor:
    """(h, w) bool: LR pixels far enough from the border that the circular blur of the
    HR-MSI does not wrap around there, and with data; a ValueError where they are fewer
    than the bands."""
    inside = torch.zeros(lr_size, dtype=torch.bool)
    inside[margin:lr_size[0] - margin, margin:lr_size[1] - margin] = True
    if lr_valid is not None:
        inside &= lr_valid.cpu()
    if inside.sum() <= bands:
        raise ValueError(f"the LR-HSI ({lr_size[0]} x {lr_size[1]} pixels) is too small to estimate its PSF from: "
                         f"{int(inside.sum())} pixels with data lie {margin} pixels or more inside its border, "
                         f"fewer than its {bands} bands. Give the PSF with --psf-sigma")
    return inside


def fit_response(lr_hsi, hr_msi, scale: int, sigma: float, window: int, used) -> tuple:
    """(srf (channels, bands), relative residual) of the (C, h, w) LR-HSI against the
    (m, H, W) HR-MSI degraded by the PSF, on the LR pixels `used`."""
    low = degrade(hr_msi[None].double(), scale, sigma, window=window)[0]
    hsi, msi = lr_hsi.double()[:, used][None], low[:, used][None]
    srf = estimate_srf(hsi, msi)[0]
    residual = ((srf @ hsi[0] - msi[0]).norm() / msi[0].norm().clamp_min(1e-300)).item()
    return srf, residual


def largest_sigma(scale: int, lr_size: tuple) -> float:
    """The top of the search: the scale, or less where the reduced-resolution pair (the
    LR-HSI degraded again) could not hold the PSF's 4-sigma support."""
    return min(SIGMA_RANGE[1] * scale, (min(lr_size) - 1) / 8)


def _search(lr_hsi, hr_msi, scale: int, used, window_of, steps: int = 18) -> tuple:
    """(residual, sigma) at the best sigma for one family of windows: a log-spaced grid,
    then golden-section search in the bracket around its best point."""
    def residual(log_sigma):
        sigma = math.exp(log_sigma)
        return fit_response(lr_hsi, hr_msi, scale, sigma, window_of(sigma), used)[1]

    low, high = math.log(SIGMA_RANGE[0]), math.log(largest_sigma(scale, tuple(lr_hsi.shape[1:])))
    grid = [low + (high - low) * i / (steps - 1) for i in range(steps)]
    values = [residual(g) for g in grid]
    best = min(range(steps), key=values.__getitem__)
    a, b = grid[max(best - 1, 0)], grid[min(best + 1, steps - 1)]
    c, d = b - GOLDEN * (b - a), a + GOLDEN * (b - a)
    fc, fd = residual(c), residual(d)
    while b - a > 1e-3:
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - GOLDEN * (b - a)
            fc = residual(c)
        else:
            a, c, fc = c, d, fd
            d = a + GOLDEN * (b - a)
            fd = residual(d)
    return min((values[best], math.exp(grid[best])), (fc, math.exp(c)), (fd, math.exp(d)))


def estimate_observation(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int, lr_valid=None,
                         sigma: float = None) -> ObservationEstimate:
    """The PSF and response of a (C, h, w) LR-HSI and (m, H, W) HR-MSI pair (module doc).
    With sigma (--psf-sigma), the PSF is given: over its whole support, only the response
    is fitted. lr_valid: (h, w) LR pixels with data, or None."""
    largest = full_support(sigma if sigma is not None else largest_sigma(scale, tuple(lr_hsi.shape[1:])), 4.0)
    used = _interior(tuple(lr_hsi.shape[1:]), lr_hsi.shape[0], lr_valid, math.ceil(largest / 2 / scale))
    assumed = fit_response(lr_hsi, hr_msi, scale, ASSUMED_SIGMA, scale, used)[1]
    at_limit = False
    if sigma is not None:
        window, how = full_support(sigma), "given"
    else:
        families = {"scale": lambda s: scale, "3 sigma": full_support, "4 sigma": lambda s: full_support(s, 4.0)}
        found = {name: _search(lr_hsi, hr_msi, scale, used, window_of) for name, window_of in families.items()}
        name = min(found, key=lambda n: found[n][0])
        sigma, window, how = found[name][1], families[name](found[name][1]), "estimated"
        at_limit = sigma > 0.99 * largest_sigma(scale, tuple(lr_hsi.shape[1:]))
        if assumed <= found[name][0] * 1.001:  # e.g. at x2 every sigma over 2 x 2 is one box filter
            sigma, window, at_limit = ASSUMED_SIGMA, scale, False
    if at_limit:  # a bound of the search, not an estimate: the protocol's PSF is kept
        sigma, window, how = ASSUMED_SIGMA, scale, "assumed"
    srf, residual = fit_response(lr_hsi, hr_msi, scale, sigma, window, used)
    return ObservationEstimate(scale, sigma, window, srf.to(lr_hsi.dtype), residual, assumed, how, at_limit)
