"""Fusion quality metrics. Each is called as f(pred, target, ...) on Tensor[B, C, H, W],
computed per image and averaged over the batch, with data range 1.

Conventions (they differ across the literature):
- psnr: from the MSE of the whole cube (per_band=True: the mean of per-band PSNRs).
- sam: mean spectral angle in degrees over pixels; pixels where either spectrum has zero
  norm are skipped.
- ergas: 100 / scale * sqrt(mean_b (RMSE_b / mean_b)^2), with the 1 / scale that some
  widely copied code leaves out.
- ssim: per-band SSIM (11 x 11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) averaged over
  bands, valid windows only (as torchmetrics and scikit-image with gaussian weights).
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
    pred, target = _check(pred, target)
    return (pred - target).pow(2).mean(dim=(1, 2, 3)).sqrt().mean().item()


def psnr(pred, target, data_range: float = 1.0, per_band: bool = False):
    pred, target = _check(pred, target)
    dims = (2, 3) if per_band else (1, 2, 3)
    mse = (pred - target).pow(2).mean(dim=dims)
    values = 10 * torch.log10(data_range ** 2 / mse)
    return (values.mean(dim=1) if per_band else values).mean().item()


def sam(pred, target):
    pred, target = _check(pred, target)
    dot = (pred * target).sum(dim=1)
    norms = pred.norm(dim=1) * target.norm(dim=1)
    valid = norms > 0
    cosine = (dot / norms.where(valid, torch.ones_like(norms))).clamp(-1, 1)
    angles = torch.rad2deg(torch.acos(cosine))
    per_image = (angles * valid).sum(dim=(1, 2)) / valid.sum(dim=(1, 2)).clamp_min(1)
    return per_image.mean().item()


def ergas(pred, target, scale: int):
    pred, target = _check(pred, target)
    band_rmse = (pred - target).pow(2).mean(dim=(2, 3)).sqrt()
    band_mean = target.mean(dim=(2, 3))
    per_image = 100.0 / scale * (band_rmse / band_mean).pow(2).mean(dim=1).sqrt()
    return per_image.mean().item()


def _gaussian_window(size: int, sigma: float) -> torch.Tensor:
    offsets = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    window = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    window = window / window.sum()
    return torch.outer(window, window)


def _local_mean(x, window):
    """Per-band valid-window weighted mean of (B, C, H, W)."""
    channels = x.shape[1]
    kernel = window.to(x)[None, None].expand(channels, 1, *window.shape)
    return F.conv2d(x, kernel, groups=channels)


def ssim(pred, target, data_range: float = 1.0, window_size: int = 11, sigma: float = 1.5):
    pred, target = _check(pred, target)
    window = _gaussian_window(window_size, sigma)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mu_x, mu_y = _local_mean(pred, window), _local_mean(target, window)
    var_x = _local_mean(pred * pred, window) - mu_x ** 2
    var_y = _local_mean(target * target, window) - mu_y ** 2
    cov = _local_mean(pred * target, window) - mu_x * mu_y
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (var_x + var_y + c2))
    return index.mean(dim=(1, 2, 3)).mean().item()


def uiqi(pred, target, window_size: int = 32):
    pred, target = _check(pred, target)
    size = min(window_size, *pred.shape[2:])
    window = torch.full((size, size), 1.0 / (size * size), dtype=torch.float64)
    mu_x, mu_y = _local_mean(pred, window), _local_mean(target, window)
    var_x = _local_mean(pred * pred, window) - mu_x ** 2
    var_y = _local_mean(target * target, window) - mu_y ** 2
    cov = _local_mean(pred * target, window) - mu_x * mu_y
    denominator = (var_x + var_y) * (mu_x ** 2 + mu_y ** 2)
    # Flat windows in both images (denominator 0) count as perfect agreement when equal.
    q = torch.where(denominator > 0, 4 * cov * mu_x * mu_y / denominator.where(denominator > 0, torch.ones_like(
        denominator)), (mu_x - mu_y).abs().lt(1e-12).to(cov))
    return q.mean(dim=(1, 2, 3)).mean().item()


def all_metrics(pred, target, scale: int) -> dict:
    """Every metric of one (B, C, H, W) pair, by name."""
    return {"psnr": psnr(pred, target), "sam": sam(pred, target), "ergas": ergas(pred, target, scale),
            "ssim": ssim(pred, target), "rmse": rmse(pred, target), "uiqi": uiqi(pred, target)}


__all__ = ["psnr", "sam", "ergas", "ssim", "rmse", "uiqi", "all_metrics"]
