"""`dhif fuse` on pairs as sensors make them: the PSF estimated (or given), quality at full
resolution for every method, scores against a given truth, and a masked region of the
HR-MSI found and said."""
import json

import numpy as np
import pytest
import torch

from dhif.cli import main
from dhif.data import degrade, spectral_response, to_msi, upsample_bicubic
from dhif.data.synthetic import synthetic_scene

NIKON = spectral_response("nikon_d700").double()
QUALITY = {"lr_consistency_psnr", "msi_consistency_psnr", "d_lambda", "d_s", "qnr", "d_lambda_khan", "hqnr"}
SMALL = ["--steps", "8", "--width", "4", "--stages", "1", "--head-width", "8", "--device", "cpu",
         "--lr-layout", "chw", "--msi-layout", "chw"]


def _pair(tmp_path, sigma=1.0, window=7, size=256, scale=4):
    cube = synthetic_scene(size, seed=4).double()
    np.save(tmp_path / "lr.npy", degrade(cube, scale, sigma, window=window).float().numpy())
    np.save(tmp_path / "msi.npy", to_msi(cube, NIKON).float().numpy())
    np.save(tmp_path / "truth.npy", cube.float().numpy())
    return ["--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy")]


def test_fuse_estimates_the_psf_and_scores_every_method_at_full_resolution_and_against_a_truth(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["fuse", *_pair(tmp_path), *SMALL, "--truth", str(tmp_path / "truth.npy"), "--baselines", "cs",
                 "hysure", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    psf = report["observation"]["psf"]
    assert psf["how"] == "estimated" and psf["sigma_hr_pixels"] == pytest.approx(1.0, rel=0.1)
    assert "estimated from the pair" in report["baselines"]["full_resolution"]["blur"]
    methods = {"dhif", "cs", "hysure"}
    assert set(report["full_resolution"]) - {"meaning"} == methods and set(report["truth"]) == methods
    for method in methods:
        assert set(report["full_resolution"][method]) == QUALITY
        assert 0 <= report["full_resolution"][method]["qnr"] <= 1
        assert {"psnr", "sam", "ergas", "ssim"} <= set(report["truth"][method])
    assert min(report["truth"][m]["psnr"] for m in ("cs", "hysure")) > 35  # an 8-step network is not yet
    assert "PSF estimated: Gaussian, sigma" in printed and "QNR" in printed and "HySure" in printed
    assert "% with the assumed sigma 2 over 4 x 4)" in printed  # sigma 1 found: the assumed one's fit beside it
    # The truth's scores are the fused cube's against the file given.
    fused, truth = np.load(out / "fused.npy"), np.load(tmp_path / "truth.npy")
    mse = float(((fused.astype(np.float64) - truth) ** 2).mean())
    assert report["truth"]["dhif"]["psnr"] == pytest.approx(10 * np.log10(truth.max() ** 2 / mse), abs=1e-3)


def test_a_given_psf_sigma_is_used_and_said(tmp_path):
    out = tmp_path / "out"
    assert main(["fuse", *_pair(tmp_path), *SMALL, "--psf-sigma", "1.5", "--baselines", "none", "--out",
                 str(out)]) == 0
    psf = json.loads((out / "report.json").read_text())["observation"]["psf"]
    assert psf == {"how": "given", "shape": "Gaussian", "sigma_hr_pixels": 1.5, "window_hr_pixels": 11}


def test_a_truth_of_another_shape_is_refused_in_one_line_before_any_work(tmp_path, capsys):
    arguments = _pair(tmp_path)
    np.save(tmp_path / "truth.npy", np.zeros((31, 64, 64), dtype=np.float32))
    out = tmp_path / "out"
    assert main(["fuse", *arguments, *SMALL, "--truth", str(tmp_path / "truth.npy"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is 31 x 64 x 64; the fused cube will be 31 x 256 x 256" in err[0] and not out.exists()


def test_a_masked_region_of_the_hr_msi_is_found_said_and_filled_from_the_lr_hsi(tmp_path, capsys):
    arguments = _pair(tmp_path, sigma=2.0, window=4)
    msi = np.load(tmp_path / "msi.npy")
    msi[:, 40:80, 60:100] = 0  # a black polygon, as in the Houston RGB image
    np.save(tmp_path / "msi.npy", msi)
    out = tmp_path / "out"
    assert main(["fuse", *arguments, *SMALL, "--baselines", "cs", "--save-baselines", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "holds 0 in every channel over 1600 pixels (2.4%), a masked region" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["hr_msi_empty_region"]["pixels"] == 1600
    lr = torch.from_numpy(np.load(tmp_path / "lr.npy"))
    upsampled = upsample_bicubic(lr[None], 4)[0].clamp_min(0).numpy()
    for name in ("fused", "cs"):
        cube = np.load(out / f"{name}.npy")
        assert np.allclose(cube[:, 40:80, 60:100], upsampled[:, 40:80, 60:100], atol=1e-6), name
        assert cube[:, 40:80, 60:100].min() > 0  # no hole


def test_a_pair_that_fits_a_shipped_model_fine_tunes_it_unless_asked_to_start_from_scratch(tmp_path, capsys):
    arguments = [*_pair(tmp_path, sigma=2.0, window=4), "--steps", "8", "--device", "cpu", "--lr-layout", "chw",
                 "--msi-layout", "chw", "--baselines", "none"]
    assert main(["fuse", *arguments, "--out", str(tmp_path / "tuned")]) == 0
    assert "fits the shipped x4 model (31 bands, RGB): fine-tuning it" in capsys.readouterr().out
    tuned = json.loads((tmp_path / "tuned" / "report.json").read_text())["model"]
    assert tuned["fine_tuned_from"] == "the shipped x4 model (cave_x4_cpu.pt)" and tuned["steps"] == 8
    assert tuned["settings"]["width"] == 16 and tuned["settings"]["lr"] == 2e-4  # the shipped model's
    assert tuned["settings"]["reduced_pair_share"].startswith("1 patch in 4")
    assert main(["fuse", *arguments, "--from-scratch", "--width", "4", "--out", str(tmp_path / "new")]) == 0
    new = json.loads((tmp_path / "new" / "report.json").read_text())["model"]
    assert "fine_tuned_from" not in new and new["settings"]["width"] == 4


def test_a_given_model_starts_from_component_substitution_with_the_pairs_psf(tmp_path):
    from dhif.baselines import Observation, component_substitution
    from dhif.baselines.estimation import estimate_observation
    from dhif.fuse import with_pair_psf
    from dhif.pretrained import pretrained_model

    cube = synthetic_scene(128, seed=5).double()
    lr, msi = degrade(cube, 4, 1.0, window=7)[None].float(), to_msi(cube, NIKON)[None].float()
    estimate = estimate_observation(lr[0], msi[0], 4)
    model = with_pair_psf(pretrained_model(scale=4), estimate)
    assert model.config.sigma == estimate.sigma == pytest.approx(1.0, rel=0.1) and model.config.psf_window == 7
    expected = component_substitution(lr, msi, Observation(4, estimate.sigma, window=7))
    torch.testing.assert_close(model.initial_estimate(lr, msi), expected)


def test_interleaved_samples_come_one_in_every_from_the_first_dataset():
    from dhif.data.datasets import EpochSampledDataset, InterleavedDataset

    class Labelled(EpochSampledDataset):
        def __init__(self, label):
            super().__init__(12, 0)
            self.label = label

        def __getitem__(self, index):
            return self.label, self.epoch

    mixed = InterleavedDataset(Labelled("reduced"), Labelled("full"), 4)
    mixed.set_epoch(3)
    assert [mixed[i] for i in range(len(mixed))] == [("reduced", 3), ("full", 3), ("full", 3), ("full", 3)] * 3
