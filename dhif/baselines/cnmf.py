"""CNMF, coupled non-negative matrix factorization: Yokoya, Yairi, Iwasaki, IEEE TGRS 50(2),
2012, "Coupled nonnegative matrix factorization unmixing for hyperspectral and
multispectral data fusion"."""
import torch

from ..data.degrade import upsample_bicubic
from .observation import Observation, msi_in_hsi_units, response

_TINY = 1e-12  # of the data's peak, which is 1 inside: keeps the multiplicative updates defined


def cnmf(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation, endmembers: int = 30,
         outer: int = 2, inner: int = 100) -> torch.Tensor:
    """(B, C, H, W) = W_h A_m: the LR-HSI is unmixed into `endmembers` spectra W_h and LR
    abundances, the HR-MSI into HR abundances A_m under the coupled spectra R W_h,
    alternately, each unmixing starting from the other's result (R: the response; the
    HSI's abundances: A_m blurred and decimated). Lee-Seung multiplicative updates; the
    endmembers start at the LR-HSI's purest pixels (successive projections, deterministic).
    The MSI's spectra stay R W_h rather than being refined on their own: measured on CAVE
    scenes, refining them doubled the time and changed PSNR by under 0.1 dB. Needs the blur
    and the response; non-negative data (negative values are clipped at 0)."""
    hr_msi = msi_in_hsi_units(lr_hsi, hr_msi, observation)
    srf = response(lr_hsi, hr_msi, observation).clamp_min(0)
    peak = lr_hsi.flatten(1).amax(dim=1).clamp_min(torch.finfo(lr_hsi.dtype).tiny)[:, None, None, None]
    dtype = torch.float64 if lr_hsi.dtype == torch.float64 else torch.float32
    hsi, msi = (lr_hsi / peak).clamp_min(0).to(dtype), (hr_msi / peak).clamp_min(0).to(dtype)
    fused = [_coupled_unmixing(h[None], m[None], r.to(dtype), observation, endmembers, outer, inner)
             for h, m, r in zip(hsi, msi, srf)]
    return (torch.cat(fused) * peak).to(lr_hsi.dtype)


def _coupled_unmixing(hsi, msi, srf, observation, endmembers, outer, inner):
    """One image: (1, C, h, w), (1, m, H, W), (m, C) -> (1, C, H, W)."""
    bands, low_shape, high_shape = hsi.shape[1], hsi.shape[-2:], msi.shape[-2:]
    hsi_rows, msi_rows = hsi[0].flatten(1), msi[0].flatten(1)
    spectra = hsi_rows[:, successive_projection(hsi_rows, min(endmembers, bands, hsi_rows.shape[1]))]
    low = _fitted_start(hsi_rows, spectra, torch.full_like(hsi_rows[:spectra.shape[1]], 1 / spectra.shape[1]))
    spectra, low = _factorise(hsi_rows, spectra, low, inner, update_spectra=True)
    high = upsample_bicubic(low.reshape(1, -1, *low_shape), observation.scale).flatten(2)[0]
    for _ in range(outer):
        high = _fitted_start(msi_rows, srf @ spectra, high)
        _, high = _factorise(msi_rows, srf @ spectra, high, inner, update_spectra=False)
        low = observation.degrade(high.reshape(1, -1, *high_shape)).clamp_min(_TINY).flatten(2)[0]
        spectra, _ = _factorise(hsi_rows, spectra, low, inner, update_spectra=True, update_abundances=False)
        spectra, low = _factorise(hsi_rows, spectra, low, inner, update_spectra=True)
    return (spectra @ high).reshape(1, bands, *high_shape)


def _fitted_start(data, spectra, guess):
    """Abundances to start the updates from: the guess moved by the least change that makes
    spectra @ abundances fit the data (the pseudo-inverse's), kept positive. Where the data
    fit the model this is already the answer, which the multiplicative updates keep; they
    would take thousands of steps to reach it from the guess."""
    return (guess + torch.linalg.pinv(spectra) @ (data - spectra @ guess)).clamp_min(_TINY)


def _factorise(data, spectra, abundances, iterations, update_spectra, update_abundances=True):
    """Lee-Seung multiplicative updates of data ~ spectra @ abundances, of the factors named."""
    spectra, abundances = spectra.clone(), abundances.clone()
    for _ in range(iterations):
        if update_abundances:
            abundances *= (spectra.T @ data) / ((spectra.T @ spectra) @ abundances + _TINY)
        if update_spectra:
            spectra *= (data @ abundances.T) / (spectra @ (abundances @ abundances.T) + _TINY)
    return spectra, abundances


def successive_projection(rows: torch.Tensor, count: int) -> torch.Tensor:
    """Indices of `count` columns of (C, n) rows, each the one farthest from the span of
    those before (Gillis and Vavasis's successive projection algorithm)."""
    residual, picks = rows.clone(), []
    for _ in range(count):
        pick = int(residual.pow(2).sum(dim=0).argmax())
        picks.append(pick)
        direction = residual[:, pick] / residual[:, pick].norm().clamp_min(torch.finfo(rows.dtype).tiny)
        residual -= direction[:, None] * (direction @ residual)[None]
    return torch.tensor(picks, device=rows.device)
