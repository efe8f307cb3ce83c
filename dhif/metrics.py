"""Fusion quality metrics. Each is called as f(pred, target, ...) on Tensor[B, C, H, W],
computed per image and averaged over the batch, with data range 1.

Conventions (they differ across the literature):
- psnr: from the MSE of the whole cube (per_band=True: the mean of per-band PSNRs).
- sam: mean spectral angle in degrees over pixels; pixels where either spectrum has zero
  norm are skipped.
- ergas: 100 / scale * sqrt(mean_b (RMSE_b / mean_b)^2), with the 1 / scale that some
  widely copied code leaves out.
- ssim: per-band SSIM (11 x 11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) averaged over
  bands, valid windows only: equal to scikit-image's structural_similarity with
  gaussian_weights=True, use_sample_covariance=False. torchmetrics also averages the
  reflect-padded border windows, which differs in the fourth decimal.
- uiqi: Wang-Bovik Q on 32 x 32 sliding windows (stride 1) per band, averaged.
"""
import torch
import torch.nn.functional as F


def _check(pred, target):
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f"metrics expect two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(target.shape)}")
    return pred.double(), target.double()


def rmse(pred, target):
    """Root-mean-square error of two (B, C, H, W) tensors, in their units, mean over the batch."""
    pred, target = _check(pred, target)
    return (pred - target).pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item()


def psnr(pred, target, data_range: float = 1.0, per_band: bool = False):
    """Peak signal-to-noise ratio in dB of two (B, C, H, W) tensors whose peak value is
    data_range (1 for reflectance in [0, 1]); per_band: the mean of the bands' PSNRs."""
    pred, target = _check(pred, target)
    dims = (2, 3) if per_band else (1, 2, 3)
    mse = (pred - target).pow(2).mean(dim=dims)
    values = 10 * torch.log10(data_range ** 2 / mse)
    return (values.mean(dim=1) if per_band else values).mean().item()


def sam(pred, target):
    """Spectral angle in degrees between the pixels' spectra of two (B, C, H, W) tensors,
    mean over pixels (all-zero spectra left out) and batch. Independent of scale."""
    pred, target = _check(pred, target)
    dot = (pred * target).sum(dim=1)
    norms = pred.norm(dim=1) * target.norm(dim=1)
    valid = norms > 0
    cosine = (dot / norms.where(valid, torch.ones_like(norms))).clamp(-1, 1)
    angles = torch.rad2deg(torch.acos(cosine))
    per_image = (angles * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp_min(1)
    return per_image.mean().item()


def ergas(pred, target, scale: int):
    """ERGAS of two (B, C, H, W) tensors at resolution ratio `scale`: 100 / scale times the
    root of the bands' mean squared relative RMSE. Unitless, independent of scale."""
    pred, target = _check(pred, target)
    band_rmse = (pred - target).pow(2).mean(dim=(2, 3)).sqrt()
    band_mean = target.mean(dim=(2, 3))
    per_image = 100.0 / scale * (band_rmse / band_mean).pow(2).mean(dim=1).sqrt()
    return per_image.mean().item()


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    return window / window.sum()


def _gaussian_mean(x, window):
    """Valid-window Gaussian-weighted local mean of (B, C, H, W), as two 1-D passes."""
    channels, size = x.shape[1], window.numel()
    w = window.to(x)
    x = F.conv2d(x, w.view(1, 1, 1, size).expand(channels, 1, 1, size), groups=channels)
    return F.conv2d(x, w.view(1, 1, size, 1).expand(channels, 1, size, 1), groups=channels)


def _box_mean(x, size: int):
    """Valid-window mean over size x size boxes of (B, C, H, W), from an integral image."""
    integral = F.pad(x, [1, 0, 1, 0]).cumsum(dim=2).cumsum(dim=3)
    total = (integral[..., size:, size:] - integral[..., :-size, size:] - integral[..., size:, :-size]
             + integral[..., :-size, :-size])
    return total / (size * size)


def _local_statistics(pred, target, local_mean):
    mu_x, mu_y = local_mean(pred), local_mean(target)
    var_x = local_mean(pred * pred) - mu_x ** 2
    var_y = local_mean(target * target) - mu_y ** 2
    cov = local_mean(pred * target) - mu_x * mu_y
    return mu_x, mu_y, var_x, var_y, cov


def ssim(pred, target, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5):
    """Structural similarity of two (B, C, H, W) tensors (Gaussian 11 x 11 window, sigma
    1.5, valid positions), mean over bands and batch; data_range as in psnr."""
    pred, target = _check(pred, target)
    window = _gaussian_window(window_size, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y, var_x, var_y, cov = _local_statistics(pred, target, lambda x: _gaussian_mean(x, window))
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(1, 2, 3)).mean().item()


def uiqi(pred, target, window_size: int = 32):
    """Universal image quality index of two (B, C, H, W) tensors over window_size boxes,
    mean over bands and batch."""
    pred, target = _check(pred, target)
    size = min(window_size, *pred.shape[2:])
    mu_x, mu_y, var_x, var_y, cov = _local_statistics(pred, target, lambda x: _box_mean(x, size))
    denominator = (var_x + var_y) * (mu_x ** 2 + mu_y ** 2)
    # Flat windows in both images (denominator 0) count as perfect agreement when equal.
    q = torch.where(denominator > 0, 4 * cov * mu_x * mu_y / denominator.where(denominator > 0, torch.ones_like(
        denominator)), (mu_x - mu_y).abs().lt(1e-12).to(cov))
    return q.mean(dim=(1, 2, 3)).mean().item()


def valid_pixels(cube: torch.Tensor, valid) -> torch.Tensor:
    """(B, C, H, W) as (B, C, N, 1), the N pixels where `valid` (H, W) holds, for the
    metrics that average over pixels; the cube itself where valid is None."""
    return cube if valid is None else cube[..., valid][..., None]


def psnr_over_valid(pred, target, valid=None, data_range: float = None) -> float:
    """PSNR of two (B, C, H, W) tensors over the pixels with data (valid: an (H, W) mask, or
    None for all), with the peak data_range, or where that is None the target's own maximum
    over those pixels: the one rule by which dhif scores data in any units (1 is the peak of
    reflectance in [0, 1], the authors' protocol)."""
    pixels, truth = valid_pixels(pred, valid), valid_pixels(target, valid)
    return psnr(pixels, truth, float(truth.max()) if data_range is None else data_range)


def all_metrics(pred, target, scale: int, data_range: float = 1.0, valid=None) -> dict:
    """Every metric of one (B, C, H, W) pair, by name; data_range is PSNR's and SSIM's peak
    (None: the target's maximum over the pixels with data, as psnr_over_valid). valid: an
    (H, W) mask of the pixels with data, or None; the others are left out of the per-pixel
    metrics (PSNR, SAM, ERGAS, RMSE), and the windowed ones (SSIM, UIQI) see the truth there."""
    windowed = pred if valid is None else torch.where(valid, pred, target)
    pixels, truth = valid_pixels(pred, valid), valid_pixels(target, valid)
    peak = float(truth.max()) if data_range is None else data_range
    return {"psnr": psnr_over_valid(pixels, truth, data_range=peak), "sam": sam(pixels, truth),
            "ergas": ergas(pixels, truth, scale), "ssim": ssim(windowed, target, peak), "rmse": rmse(pixels, truth),
            "uiqi": uiqi(windowed, target)}


__all__ = ["psnr", "psnr_over_valid", "sam", "ergas", "ssim", "rmse", "uiqi", "all_metrics", "valid_pixels"]
