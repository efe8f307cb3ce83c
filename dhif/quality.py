"""Quality without a reference, at full resolution: the QNR family.

- q_blocks: the universal image quality index Q (Wang & Bovik, IEEE SPL 9(3), 2002) of
  every pair of bands of two images, on non-overlapping block x block windows, averaged.
- d_lambda, d_s, qnr: Alparone, Aiazzi, Baronti, Garzelli, Nencini, Selva, "Multispectral
  and panchromatic data fusion assessment without reference", PE&RS 74(2), 2008, with
  p = q = 1 and alpha = beta = 1: D-lambda compares the Q of every pair of fused bands with
  the Q of the same pair of LR-HSI bands; D-s compares the Q of each fused band with each
  HR-MSI channel (the panchromatic image of the paper: every channel, averaged) with the Q
  of the LR-HSI band with that channel degraded to the LR grid. Blocks of 32 HR pixels, and
  of 32 / scale LR pixels (the same ground) on the LR grid.
- q2n, hqnr: Garzelli & Nencini, "Hypercomplex quality assessment of multi/hyperspectral
  images", IEEE GRSL 6(4), 2009: Q of 2^n-band images as hypercomplex numbers (bands
  zero-padded to a power of two); the hybrid QNR of Aiazzi, Alparone, Baronti, Carla,
  Garzelli, Santurri, "Full-scale assessment of pansharpening methods and data products",
  Proc. SPIE 9244, 2014: (1 - D-lambda(K)) (1 - D-s), D-lambda(K) = 1 - Q2n of the fused
  cube degraded by the observation against the LR-HSI (Khan's spectral distortion).

Images are (C, H, W); masks (H, W) of the pixels with data, None for all: a block counts
where all its pixels have data.
"""
import functools

import torch

from .metrics import psnr_over_valid

BLOCK = 32


def _blocks(image: torch.Tensor, block: int, valid=None) -> torch.Tensor:
    """(n, C, block * block): the non-overlapping blocks of (C, H, W) (the remainder rows and
    columns left out), those with a pixel without data dropped."""
    channels, height, width = image.shape
    block = min(block, height, width)
    rows, columns = height // block, width // block
    tiles = image[:, :rows * block, :columns * block].double().reshape(channels, rows, block, columns, block)
    tiles = tiles.permute(1, 3, 0, 2, 4).reshape(rows * columns, channels, block * block)
    if valid is None:
        return tiles
    full = valid[:rows * block, :columns * block].reshape(rows, block, columns, block).all(3).all(1).flatten()
    if not full.any():
        raise ValueError("no block of the image is free of pixels without data")
    return tiles[full.to(tiles.device)]


def _block_moments(x: torch.Tensor, y: torch.Tensor, block: int, valid) -> tuple:
    """(means of x, means of y, x centred, y centred) per block: (n, C) and (n, C, pixels)."""
    bx, by = _blocks(x, block, valid), _blocks(y, block, valid)
    mx, my = bx.mean(2), by.mean(2)
    return mx, my, bx - mx[..., None], by - my[..., None]


def q_blocks(x: torch.Tensor, y: torch.Tensor, block: int = BLOCK, valid=None) -> torch.Tensor:
    """(Cx, Cy): Q of band i of (Cx, H, W) x with band j of (Cy, H, W) y, the mean over
    blocks. Where a block is flat in both, Q is 2 mu_x mu_y / (mu_x^2 + mu_y^2) (1 where
    both are also zero), the limit of the formula."""
    mx, my, cx, cy = _block_moments(x, y, block, valid)
    cov = cx @ cy.transpose(1, 2) / cx.shape[2]  # (n, Cx, Cy)
    vx, vy = cx.pow(2).mean(2), cy.pow(2).mean(2)
    variances = vx[:, :, None] + vy[:, None, :]
    means = mx[:, :, None] ** 2 + my[:, None, :] ** 2
    product = mx[:, :, None] * my[:, None, :]
    one = torch.ones_like(means)
    q = torch.where(variances > 0, 4 * cov * product / (variances * means).where(variances * means > 0, one),
                    torch.where(means > 0, 2 * product / means.where(means > 0, one), one))
    return q.mean(0)


def d_lambda(fused, lr_hsi, scale: int, valid=None, lr_valid=None) -> float:
    """Spectral distortion: the mean over ordered pairs of distinct bands of |Q(F_l, F_r) -
    Q(LR_l, LR_r)|."""
    bands = fused.shape[0]
    if bands < 2:
        return 0.0
    difference = (q_blocks(fused, fused, BLOCK, valid) - q_blocks(lr_hsi, lr_hsi, _lr_block(scale), lr_valid)).abs()
    return (difference.sum() / (bands * (bands - 1))).item()  # the diagonal is 0


def d_s(fused, hr_msi, lr_hsi, low_msi, scale: int, valid=None, lr_valid=None) -> float:
    """Spatial distortion: the mean over bands l and MSI channels m of |Q(F_l, P_m) -
    Q(LR_l, P~_m)|, P~ the HR-MSI degraded to the LR grid (low_msi)."""
    high = q_blocks(fused, hr_msi, BLOCK, valid)
    low = q_blocks(lr_hsi, low_msi, _lr_block(scale), lr_valid)
    return (high - low).abs().mean().item()


def _lr_block(scale: int) -> int:
    return max(BLOCK // scale, 4)


@functools.lru_cache(maxsize=None)
def cayley_dickson_table(size: int) -> tuple:
    """(sign, index), (size, size) each: e_i e_j = sign[i, j] e_index[i, j] in the 2^n-dim
    Cayley-Dickson algebra (2: complex, 4: quaternions, 8: octonions, ...), by the product
    (a, b)(c, d) = (ac - d* b, da + b c*) on halves."""
    sign = torch.ones(1, 1, dtype=torch.float64)
    while sign.shape[0] < size:
        half = sign.shape[0]
        conjugate = torch.ones(half, dtype=torch.float64)
        conjugate[1:] = -1  # e_j* = -e_j but for j = 0
        sign = torch.cat([torch.cat([sign, sign.T], 1),  # e_i e_(half+j) = (e_j e_i) on the second half
                          torch.cat([sign * conjugate[None, :], -(sign.T * conjugate[None, :])], 1)], 0)
    index = torch.arange(size)[:, None] ^ torch.arange(size)[None, :]
    return sign, index


def q2n(x: torch.Tensor, y: torch.Tensor, block: int = BLOCK, valid=None) -> float:
    """Q2n of (C, H, W) x against (C, H, W) y: per block, 4 |cov(z, v)| |mean z| |mean v| /
    ((var z + var v)(|mean z|^2 + |mean v|^2)) with z, v the pixels as hypercomplex numbers
    of 2^n >= C components and cov(z, v) = E[(z - mean z)(v - mean v)*]; mean over blocks."""
    size = 1 << max(x.shape[0] - 1, 0).bit_length()
    mx, my, cx, cy = _block_moments(x, y, block, valid)
    covariance = cx @ cy.transpose(1, 2) / cx.shape[2]  # (n, C, C): E[cx_i cy_j]
    sign, index = cayley_dickson_table(size)
    bands = x.shape[0]
    conjugate = torch.ones(bands, dtype=torch.float64)
    conjugate[1:] = -1
    terms = covariance * (sign[:bands, :bands] * conjugate[None, :]).to(covariance)
    hypercomplex = torch.zeros(covariance.shape[0], size, dtype=torch.float64, device=covariance.device)
    hypercomplex.index_add_(1, index[:bands, :bands].flatten().to(covariance.device), terms.flatten(1))
    cov_norm = hypercomplex.norm(dim=1)
    var_x, var_y = cx.pow(2).sum(1).mean(1), cy.pow(2).sum(1).mean(1)
    mean_x, mean_y = mx.norm(dim=1), my.norm(dim=1)
    denominator = (var_x + var_y) * (mean_x ** 2 + mean_y ** 2)
    q = torch.where(denominator > 0, 4 * cov_norm * mean_x * mean_y / denominator.where(
        denominator > 0, torch.ones_like(denominator)), (mean_x == mean_y).to(denominator))
    return q.mean().item()


def full_resolution_quality(fused, lr_hsi, hr_msi, observation, srf, valid=None, lr_valid=None) -> dict:
    """The QNR family of one fused (C, H, W) cube, with its consistency with the LR-HSI and,
    through the (m, C) response srf, with the HR-MSI (PSNR in dB with each input's maximum as
    peak). All inputs in one set of units (srf maps the LR-HSI's to the HR-MSI's)."""
    scale = observation.scale
    fused, lr_hsi, hr_msi = fused.double(), lr_hsi.double(), hr_msi.double()
    degraded = observation.degrade(fused[None])[0]
    low_msi = observation.degrade(hr_msi[None])[0]
    spectral, spatial = d_lambda(fused, lr_hsi, scale, valid, lr_valid), d_s(fused, hr_msi, lr_hsi, low_msi, scale,
                                                                            valid, lr_valid)
    khan = 1 - q2n(degraded, lr_hsi, BLOCK, lr_valid)
    through_response = torch.einsum("mc,chw->mhw", srf.double(), fused)
    return {"lr_consistency_psnr": psnr_over_valid(degraded[None], lr_hsi[None], lr_valid),
            "msi_consistency_psnr": psnr_over_valid(through_response[None], hr_msi[None], valid),
            "d_lambda": spectral, "d_s": spatial, "qnr": (1 - spectral) * (1 - spatial),
            "d_lambda_khan": khan, "hqnr": (1 - khan) * (1 - spatial)}
