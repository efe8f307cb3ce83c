"""Data keep their units: `dhif fuse` of c * x is c * (fuse of x), on generated and real cubes."""
import json

import numpy as np
import pytest
import torch

from dhif.cli import main
from dhif.data import degrade, load_cube, read_array, spectral_response, to_msi
from dhif.data.synthetic import synthetic_scene
from dhif.data.units import clip_to_input_range, robust_peak


FACTORS = (1e-3, 1.0, 1e4)
TINY_MODEL = ["--width", "4", "--stages", "1", "--head-width", "8", "--device", "cpu"]


def fuse(tmp_path, name, lr_hsi, hr_msi, steps=16, extra=()):
    """Runs `dhif fuse` on (C, h, w) and (m, H, W) arrays written as .npy; (cube, report)."""
    folder = tmp_path / name
    folder.mkdir()
    np.save(folder / "lr.npy", lr_hsi)
    np.save(folder / "msi.npy", hr_msi)
    assert main(["fuse", "--lr-hsi", str(folder / "lr.npy"), "--hr-msi", str(folder / "msi.npy"), "--lr-layout", "chw",
                 "--msi-layout", "chw", "--steps", str(steps), "--out", str(folder / "out"), *TINY_MODEL,
                 *extra]) == 0
    return np.load(folder / "out" / "fused.npy"), json.loads((folder / "out" / "report.json").read_text())


def assert_scale_equivariant(tmp_path, lr_hsi: np.ndarray, hr_msi: np.ndarray):
    """Fusing c * (lr, msi), float64 files, gives c * fused to float32 rounding, and the same scores.
    (A float32 file of c * x differs from c * x in float32 by rounding, which training
    amplifies; float64 files make the scaled inputs the network sees the same.)"""
    runs = {c: fuse(tmp_path, f"c{c:g}", c * lr_hsi.astype(np.float64), c * hr_msi.astype(np.float64))
            for c in FACTORS}
    reference, report = runs[1.0]
    for c, (cube, scaled_report) in runs.items():
        np.testing.assert_allclose(cube / c, reference, rtol=0, atol=1e-6 * np.abs(reference).max(),
                                   err_msg=f"c = {c}")
        assert scaled_report["units"]["lr_hsi_peak"] == pytest.approx(c * report["units"]["lr_hsi_peak"], rel=1e-12)
        for method, scores in report["reduced_resolution"].items():
            if method != "protocol":  # the scores, not the run times
                scaled = {k: v for k, v in scaled_report["reduced_resolution"][method].items() if k != "seconds"}
                assert scaled == pytest.approx({k: v for k, v in scores.items() if k != "seconds"}, rel=1e-4, abs=1e-4)
    return reference, report


def generated_pair(size=256, scale=4, seed=3):
    hr_hsi = synthetic_scene(size, seed=seed)
    return degrade(hr_hsi, scale).numpy(), to_msi(hr_hsi, spectral_response()).numpy()


@pytest.mark.slow
def test_fusing_scaled_generated_data_scales_the_result(tmp_path):
    assert_scale_equivariant(tmp_path, *generated_pair())


@pytest.mark.slow
def test_data_in_thousands_come_back_in_thousands_with_sane_scores(tmp_path):
    lr_hsi, hr_msi = generated_pair()
    lr_hsi, hr_msi = 4000 * lr_hsi / lr_hsi.max(), 4000 * hr_msi / hr_msi.max()
    cube, report = fuse(tmp_path, "thousands", lr_hsi.astype(np.float32), hr_msi.astype(np.float32))
    # In thousands, as the input: the truth's peak is 4109 here, and a network started from component
    # substitution overshoots it at a few edges (6101 on this scene, 2026-12-05).
    assert 0 <= cube.min() and 2000 < cube.max() < 8000
    for method in ("dhif", "bicubic", "cs"):
        assert 15 < report["reduced_resolution"][method]["psnr"] < 80
    assert 20 < report["full_resolution"]["dhif"]["lr_consistency_psnr"] < 80


@pytest.mark.slow
def test_fusing_the_scaled_real_houston_pair(tmp_path, shared_data):
    houston = shared_data("houston/houston_dataset.mat")
    lr_hsi, rgb = load_cube(houston, "hyprImg").data.numpy(), load_cube(houston, "rgbImg").data.numpy()
    cube, report = assert_scale_equivariant(tmp_path, lr_hsi, rgb)
    assert report["inputs"]["lr_hsi"]["dtype"] == "float64"  # the test's scaled files
    assert cube.max() > 1000  # in the sensor's units (the digital numbers reach 19534), not in [0, 1]


@pytest.mark.slow
def test_fusing_scaled_real_paris_and_jasper_ridge_cubes(tmp_path, shared_data):
    # Paris: the Hyperion cube degraded x2 with the real ALI image; Jasper Ridge: 198 bands
    # degraded x2, with a 4-channel image of band averages as the MSI.
    paris = shared_data("paris/paris_data_hs_ms.mat")
    hsi, msi = load_cube(paris, "HSim").data, load_cube(paris, "MSim").data
    (tmp_path / "paris").mkdir()
    assert_scale_equivariant(tmp_path / "paris", degrade(hsi, 2).numpy(), msi.numpy())
    pixels = read_array(shared_data("jasper_ridge/jasperRidge2_R198.mat"), "Y").astype(np.float64)  # 198 x 10000
    hsi = torch.from_numpy(pixels.reshape(198, 100, 100).transpose(0, 2, 1)[:, :96, :96].copy())  # column-major
    msi = torch.stack([bands.mean(dim=0) for bands in hsi.tensor_split(4)])
    (tmp_path / "jasper").mkdir()
    assert_scale_equivariant(tmp_path / "jasper", degrade(hsi, 2).numpy(), msi.numpy())


def test_robust_peak_is_proportional_and_ignores_a_few_hot_pixels():
    cube = torch.rand(10, 50, 50, dtype=torch.float64)
    cube[0, 0, :5] = 1e6
    assert 0.99 < robust_peak(cube) < 1.01  # the 99.9th percentile of uniform [0, 1) data, not a hot pixel
    assert robust_peak(1e4 * cube) == pytest.approx(1e4 * robust_peak(cube), rel=1e-12)
    assert robust_peak(torch.zeros(3, 4, 4)) == 0


def test_clipping_is_at_zero_only_and_only_for_non_negative_inputs():
    result = torch.tensor([-1.0, 0.5, 7.0])
    assert clip_to_input_range(result, torch.tensor([0.0, 1.0])).tolist() == [0.0, 0.5, 7.0]
    assert clip_to_input_range(result, torch.tensor([-0.1, 1.0])).tolist() == [-1.0, 0.5, 7.0]
