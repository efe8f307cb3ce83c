"""Metrics against independent implementations, and their documented conventions."""
import math

import numpy as np
import pytest
import torch

from dhif import metrics


@pytest.fixture
def pair():
    generator = torch.Generator().manual_seed(0)
    target = torch.rand(2, 6, 40, 48, generator=generator, dtype=torch.float64) * 0.8 + 0.1
    pred = (target + 0.03 * torch.randn(target.shape, generator=generator, dtype=torch.float64)).clamp(0, 1)
    return pred, target


def test_psnr_against_scikit_image(pair):
    skimage_metrics = pytest.importorskip("skimage.metrics")
    pred, target = pair
    expected = np.mean([skimage_metrics.peak_signal_noise_ratio(t.numpy(), p.numpy(), data_range=1.0)
                        for p, t in zip(pred, target)])
    assert metrics.psnr(pred, target) == pytest.approx(expected, rel=1e-10)
    per_band = np.mean([[skimage_metrics.peak_signal_noise_ratio(t[b].numpy(), p[b].numpy(), data_range=1.0)
                         for b in range(6)] for p, t in zip(pred, target)])
    assert metrics.psnr(pred, target, per_band=True) == pytest.approx(per_band, rel=1e-10)


def test_ssim_against_scikit_image_and_torchmetrics(pair):
    tm = pytest.importorskip("torchmetrics.functional.image")
    skimage_metrics = pytest.importorskip("skimage.metrics")
    pred, target = pair
    # scikit-image with Gaussian weights and population covariance: the same definition
    # (valid windows only).
    sk = np.mean([[skimage_metrics.structural_similarity(t[b].numpy(), p[b].numpy(), data_range=1.0,
                                                         gaussian_weights=True, sigma=1.5,
                                                         use_sample_covariance=False)
                   for b in range(6)] for p, t in zip(pred, target)])
    assert metrics.ssim(pred, target) == pytest.approx(sk, rel=1e-9)
    # torchmetrics also averages the reflect-padded border windows: close, not equal.
    expected = tm.structural_similarity_index_measure(pred, target, data_range=1.0).item()
    assert metrics.ssim(pred, target) == pytest.approx(expected, abs=1e-3)


def test_sam_against_torchmetrics(pair):
    tm = pytest.importorskip("torchmetrics.functional.image")
    pred, target = pair
    expected = math.degrees(tm.spectral_angle_mapper(pred, target).item())
    assert metrics.sam(pred, target) == pytest.approx(expected, rel=1e-8)


def test_sam_skips_zero_spectra():
    target = torch.rand(1, 4, 3, 3, dtype=torch.float64)
    pred = target * 2.0  # same direction: angle 0
    pred[0, :, 1, 1] = 0.0
    target[0, :, 2, 2] = 0.0
    assert metrics.sam(pred, target) == pytest.approx(0.0, abs=1e-6)


def test_ergas_against_torchmetrics(pair):
    tm = pytest.importorskip("torchmetrics.functional.image")
    pred, target = pair
    expected = tm.error_relative_global_dimensionless_synthesis(pred, target, ratio=4).item()
    assert metrics.ergas(pred, target, 4) == pytest.approx(expected, rel=1e-6)
    # The 1/scale factor is part of the definition: x8 gives half of x4's value.
    assert metrics.ergas(pred, target, 8) == pytest.approx(metrics.ergas(pred, target, 4) / 2)


def test_rmse_and_uiqi(pair):
    pred, target = pair
    assert metrics.rmse(pred, target) == pytest.approx(
        np.mean([((p - t) ** 2).mean().sqrt().item() for p, t in zip(pred, target)]))
    assert metrics.uiqi(target, target) == pytest.approx(1.0)
    assert 0.5 < metrics.uiqi(pred, target) < 1.0
    # One window covering a whole 32 x 32 band equals the closed form of Q on that band.
    p, t = pred[:1, :1, :32, :32], target[:1, :1, :32, :32]
    mx, my = p.mean(), t.mean()
    vx, vy = p.var(unbiased=False), t.var(unbiased=False)
    cov = ((p - mx) * (t - my)).mean()
    assert metrics.uiqi(p, t) == pytest.approx((4 * cov * mx * my / ((vx + vy) * (mx ** 2 + my ** 2))).item())


def test_metrics_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="one shape"):
        metrics.psnr(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 5))
