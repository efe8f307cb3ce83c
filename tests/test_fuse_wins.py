"""`dhif fuse` with its defaults, where it must win: DHIF-Net above every baseline at reduced
resolution on the real Houston pair and on the real Paris pair at x2, and against the truth on
a CAVE scene simulated at x4 with the protocol's PSF and with another one, which dhif fuse
estimates (benchmarks/fuse_table.py measures these and the other pairs)."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dhif.baselines import BASELINES
from dhif.cli import main
from dhif.data import degrade, read_cave_scene, read_cube, spectral_response, to_msi
from dhif.metrics import psnr_over_valid


def _fuse(tmp_path, lr_hsi, hr_msi, extra=()) -> dict:
    np.save(tmp_path / "lr.npy", lr_hsi.float().numpy())
    np.save(tmp_path / "msi.npy", hr_msi.float().numpy())
    assert main(["fuse", "--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy"),
                 "--lr-layout", "chw", "--msi-layout", "chw", "--baselines", "all", "--save-baselines",
                 "--device", "cpu", "--out", str(tmp_path / "out"), *extra]) == 0
    return json.loads((tmp_path / "out" / "report.json").read_text())


@pytest.mark.slow
def test_on_the_real_houston_pair_dhif_net_beats_every_baseline_at_reduced_resolution(tmp_path, shared_data):
    houston = shared_data("houston/houston_dataset.mat")
    report = _fuse(tmp_path, read_cube(houston, "hyprImg"), read_cube(houston, "rgbImg"))
    scores = {method: report["reduced_resolution"][method]["psnr"] for method in ("dhif", *BASELINES)}
    assert max(scores, key=scores.get) == "dhif", scores


@pytest.mark.slow
def test_on_the_real_paris_pair_at_x2_dhif_net_beats_every_baseline_at_reduced_resolution(tmp_path, shared_data):
    paris = shared_data("paris/paris_data_hs_ms.mat")
    hyperion = read_cube(paris, "HSim").double()  # the LR-HSI: its 2 x 2 averages, beside the real ALI image
    report = _fuse(tmp_path, F.avg_pool2d(hyperion[None], 2)[0], read_cube(paris, "MSim").double())
    scores = {method: report["reduced_resolution"][method]["psnr"] for method in ("dhif", *BASELINES)}
    assert max(scores, key=scores.get) == "dhif", scores


@pytest.mark.slow
def test_on_a_cave_scene_at_x4_dhif_net_beats_every_baseline_against_the_truth(tmp_path, cave_dir):
    truth = read_cave_scene(cave_dir / "watercolors_ms").double()
    _fuse(tmp_path, degrade(truth, 4), to_msi(truth, spectral_response("nikon_d700")))
    scores = {method: psnr_over_valid(torch.from_numpy(np.load(tmp_path / "out" / f"{name}.npy")).double()[None],
                                      truth[None])
              for method, name in (("dhif", "fused"), *((m, m) for m in BASELINES))}
    assert max(scores, key=scores.get) == "dhif", scores


@pytest.mark.slow
def test_on_a_pair_made_with_another_psf_the_estimate_is_used_and_dhif_net_beats_every_baseline(tmp_path, cave_dir):
    truth = read_cave_scene(cave_dir / "watercolors_ms").double()
    np.save(tmp_path / "truth.npy", truth.float().numpy())
    report = _fuse(tmp_path, degrade(truth, 4, 1.0, window=7), to_msi(truth, spectral_response("nikon_d700")),
                   ["--truth", str(tmp_path / "truth.npy")])
    assert report["observation"]["psf"]["sigma_hr_pixels"] == pytest.approx(1.0, rel=0.1)
    methods = ("dhif", *BASELINES)
    assert all(0 < report["full_resolution"][m]["hqnr"] <= 1 for m in methods)
    for method, name in (("dhif", "fused"), *((m, m) for m in BASELINES)):  # --truth scores the written cubes
        cube = torch.from_numpy(np.load(tmp_path / "out" / f"{name}.npy")).double()
        assert report["truth"][method]["psnr"] == pytest.approx(psnr_over_valid(cube[None], truth[None]), abs=1e-3)
    scores = {method: report["truth"][method]["psnr"] for method in methods}
    assert max(scores, key=scores.get) == "dhif", scores
