"""HySure: Simoes, Bioucas-Dias, Almeida, Chanussot, "A convex formulation for hyperspectral
image superresolution via subspace-based regularization", IEEE TGRS 53(6), 2015.

The fused cube is E X, E an orthonormal basis of the LR-HSI's spectral subspace (its
leading singular vectors) and X the (p, H, W) coefficients that minimise

    1/2 ||Y_h - E X B M||^2 + lambda_m / 2 ||Y_m - R E X||^2 + lambda_phi VTV(X),

B the PSF, M the decimation, R the response and VTV the vector total variation of X (the
norm over coefficients and both directions of its horizontal and vertical differences),
by ADMM on the splitting V1 = X B, V2 = X, V3 = X D_h, V4 = X D_v (SALSA), whose X step is
one division in the Fourier domain. The paper's blind step, estimating B and R from the
pair, is dhif.baselines.estimation's, shared by every method; here B is the observation's
PSF and R its response (given, or estimated for the pair as every method does).
"""
import torch

from ..data.degrade import decimation_start, psf_to_otf
from .observation import Observation, msi_in_hsi_units, response


def hysure(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, observation: Observation, subspace: int = 10,
           lambda_phi: float = 5e-4, lambda_m: float = 1.0, mu: float = 0.05, iterations: int = 200) -> torch.Tensor:
    """(B, C, H, W) from a (B, C, h, w) LR-HSI and a (B, m, H, W) HR-MSI, in the LR-HSI's
    units. The paper's parameters (subspace 10, lambda_phi 5e-4, lambda_m 1, mu 0.05, 200
    iterations), on data scaled to the LR-HSI's peak. Needs the blur and the response."""
    hr_msi = msi_in_hsi_units(lr_hsi, hr_msi, observation)
    srf = response(lr_hsi, hr_msi, observation)
    peak = lr_hsi.flatten(1).abs().amax(dim=1).clamp_min(torch.finfo(lr_hsi.dtype).tiny)[:, None, None, None]
    dtype = torch.float64 if lr_hsi.dtype == torch.float64 else torch.float32
    fused = [_one_image((h / p).to(dtype), (m / p).to(dtype), r.to(dtype), observation, subspace, lambda_phi,
                        lambda_m, mu, iterations) * p.to(dtype)
             for h, m, r, p in zip(lr_hsi, hr_msi, srf, peak)]
    return torch.stack(fused).to(lr_hsi.dtype)


def _difference_otfs(height: int, width: int, like: torch.Tensor) -> tuple:
    """The OTFs of circular horizontal and vertical first differences."""
    horizontal, vertical = like.new_zeros(height, width), like.new_zeros(height, width)
    horizontal[0, 0], horizontal[0, -1] = 1, -1
    vertical[0, 0], vertical[-1, 0] = 1, -1
    return torch.fft.fft2(horizontal), torch.fft.fft2(vertical)


def _one_image(hsi, msi, srf, observation, subspace, lambda_phi, lambda_m, mu, iterations):
    """(C, h, w), (m, H, W), (m, C) -> (C, H, W), all scaled to the LR-HSI's peak."""
    scale, (bands, low_h, low_w), (height, width) = observation.scale, hsi.shape, msi.shape[-2:]
    basis = torch.linalg.svd(hsi.flatten(1), full_matrices=False)[0][:, :min(subspace, bands, low_h * low_w)]
    start = decimation_start(scale)
    sampled = hsi.new_zeros(basis.shape[1], height, width)  # E^T Y_h on the samples the decimation keeps
    sampled[:, start::scale, start::scale] = torch.einsum("cp,chw->phw", basis, hsi)
    mask = torch.zeros(height, width, dtype=torch.bool, device=hsi.device)
    mask[start::scale, start::scale] = True
    otfs = [psf_to_otf(observation.psf().to(hsi), height, width).to(torch.promote_types(hsi.dtype, torch.complex64)),
            None, *_difference_otfs(height, width, hsi)]  # B, I, D_h, D_v
    denominator = sum(1 if h is None else h.abs() ** 2 for h in otfs)
    projected = srf @ basis  # R E: (m, p)
    normal = lambda_m * projected.T @ projected + mu * torch.eye(projected.shape[1], dtype=hsi.dtype,
                                                                 device=hsi.device)
    msi_term = lambda_m * torch.einsum("mp,mhw->phw", projected, msi)

    def apply(otf, image_spectrum):
        return torch.fft.ifft2(image_spectrum if otf is None else image_spectrum * otf).real

    x = torch.nn.functional.interpolate(torch.einsum("cp,chw->phw", basis, hsi)[None], size=(height, width),
                                        mode="bicubic", align_corners=False)[0]
    spectrum = torch.fft.fft2(x)
    products = [apply(h, spectrum) for h in otfs]  # H_i X
    duals = [torch.zeros_like(x) for _ in otfs]
    for _ in range(iterations):
        targets = [p - d for p, d in zip(products, duals)]  # H_i X - D_i
        splits = [torch.where(mask, (sampled + mu * targets[0]) / (1 + mu), targets[0]),
                  torch.linalg.solve(normal, (msi_term + mu * targets[1]).flatten(1)).reshape(targets[1].shape)]
        magnitude = (targets[2].pow(2) + targets[3].pow(2)).sum(0).sqrt()
        shrink = (magnitude - lambda_phi / mu).clamp_min(0) / magnitude.clamp_min(torch.finfo(hsi.dtype).tiny)
        splits += [targets[2] * shrink, targets[3] * shrink]
        numerator = sum(torch.fft.fft2(v + d) * (1 if h is None else h.conj()) for v, d, h in zip(splits, duals, otfs))
        spectrum = numerator / denominator
        products = [apply(h, spectrum) for h in otfs]
        duals = [d - (p - v) for d, p, v in zip(duals, products, splits)]
    return torch.einsum("cp,phw->chw", basis, products[1])
