"""The classical baselines: each recovers exactly the data that fit its model, keeps the
inputs' units, and runs on every device; the choice of methods on the command line."""
import json

import numpy as np
import pytest
import torch

from dhif.baselines import BASELINES, Observation, chosen_baselines, cnmf, estimate_srf, fuse_sylvester, hysure
from dhif.baselines.cnmf import successive_projection
from dhif.cli import main
from dhif.data import degrade, spectral_response, to_msi
from dhif.data.synthetic import synthetic_scene

SCALE, SIGMA, BANDS, SIZE = 8, 2.0, 31, 96
NIKON = spectral_response("nikon_d700").double()


def _positive_images(count, seed):
    """(count, SIZE, SIZE) smooth positive random images, independent of each other."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, count, SIZE // 8, SIZE // 8, generator=generator, dtype=torch.float64)
    fine = torch.rand(1, count, SIZE, SIZE, generator=generator, dtype=torch.float64)
    smooth = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bicubic", align_corners=False)
    return (smooth.clamp_min(0) + 0.3 * fine + 0.1)[0]


def _detail_scene(kind, seed=0):
    """(HR-HSI, HR-MSI) whose every band is made from the MSI: affine in all its channels
    ('cs'), affine in one channel ('glp'), proportional to one ('sfim')."""
    generator = torch.Generator().manual_seed(seed)
    msi = _positive_images(3, seed)
    gains = torch.rand(BANDS, 3, generator=generator, dtype=torch.float64) + 0.2
    offsets = torch.rand(BANDS, 1, 1, generator=generator, dtype=torch.float64)
    if kind == "cs":
        return torch.einsum("ck,khw->chw", gains, msi) + offsets, msi
    one = msi[torch.arange(BANDS) % 3] * gains[:, :1, None]
    return (one + offsets if kind == "glp" else one), msi


def _low_rank_scene(seed=0, endmembers=3):
    """A cube of `endmembers` spectra with non-negative abundances, each spectrum alone over
    a 32 x 32 block (pure pixels that survive the x8 blur), and its Nikon RGB image."""
    generator = torch.Generator().manual_seed(seed)
    spectra = torch.rand(BANDS, endmembers, generator=generator, dtype=torch.float64) + 0.1
    abundances = _positive_images(endmembers, seed)
    abundances = abundances / abundances.sum(dim=0, keepdim=True)
    for k in range(endmembers):
        abundances[:, 32 * k:32 * k + 32, :32] = 0
        abundances[k, 32 * k:32 * k + 32, :32] = 1
    cube = torch.einsum("cp,phw->chw", spectra, abundances)
    return cube, to_msi(cube, NIKON)


def _relative_error(result, truth):
    return float((result - truth).abs().max() / truth.abs().max())


EXACT = {  # method -> (scene, the responses it is exact with, keyword arguments)
    "cs": (lambda: _detail_scene("cs"), (None,), {}),
    "glp": (lambda: _detail_scene("glp"), (None,), {}),
    "sfim": (lambda: _detail_scene("sfim"), (None,), {}),
    "cnmf": (_low_rank_scene, (NIKON, None), {"endmembers": 3}),
    "fuse": (_low_rank_scene, (NIKON, None), {"subspace": 3, "prior_weight": 1e-12}),
    "hysure": (_low_rank_scene, (NIKON, None), {"subspace": 3, "lambda_phi": 0.0, "mu": 0.005, "iterations": 2000}),
}


@pytest.mark.parametrize("method", EXACT)
def test_each_method_recovers_data_that_fit_its_model(method, device):
    scene, responses, options = EXACT[method]
    cube, msi = (t[None].to(device) for t in scene())
    lr = degrade(cube, SCALE, SIGMA)
    for srf in responses:
        observation = Observation(SCALE, SIGMA, None if srf is None else srf.to(device))
        result = BASELINES[method].run(lr, msi, observation, **options)
        assert result.shape == cube.shape and result.device == cube.device
        assert _relative_error(result, cube) < 1e-6, (method, srf is None)
    # The same data are not trivial: bicubic upsampling alone is far off.
    assert _relative_error(BASELINES["bicubic"].run(lr, msi, Observation(SCALE)), cube) > 0.05


def test_fuse_in_a_subspace_larger_than_the_data_is_not_exact_but_close():
    cube, msi = (t[None] for t in _low_rank_scene())
    lr = degrade(cube, SCALE, SIGMA)
    bicubic = _relative_error(BASELINES["bicubic"].run(lr, msi, Observation(SCALE)), cube)
    wide = _relative_error(fuse_sylvester(lr, msi, Observation(SCALE, SIGMA, NIKON), subspace=10), cube)
    assert 1e-6 < wide < bicubic


# Rounding differs with the units and the batch (BLAS), and the iterative and eigenvalue
# solvers carry it over: a few 1e-6 of the peak in float64, where a wrong unit or batch
# handling is a few percent.


def _simulated(seed=3, dtype=torch.float64):
    cube = synthetic_scene(64, seed=seed).to(dtype)[None]
    return degrade(cube, SCALE, SIGMA), to_msi(cube, NIKON.to(dtype)), cube


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("known", [True, False], ids=["srf given", "srf estimated"])
def test_units_in_are_units_out(method, known):
    lr, msi, _ = _simulated()
    observation = Observation(SCALE, SIGMA, NIKON if known else None)
    reference = BASELINES[method].run(lr, msi, observation)
    for factor in (1e-3, 1e4):
        scaled = BASELINES[method].run(lr * factor, msi * factor, observation)
        assert _relative_error(scaled / factor, reference) < 1e-5, factor
    if not known:  # an MSI in other units than the HSI (a uint8 RGB beside a uint16 cube)
        assert _relative_error(BASELINES[method].run(lr, msi * 250.0, observation), reference) < 1e-5


@pytest.mark.parametrize("method", BASELINES)
def test_every_method_beats_bicubic_on_a_simulated_scene_and_keeps_its_dtype(method, device):
    lr, msi, cube = (t.to(device) for t in _simulated(dtype=torch.float32))
    result = BASELINES[method].run(lr, msi, Observation(SCALE, SIGMA, NIKON.float().to(device)))
    assert result.dtype == torch.float32 and torch.isfinite(result).all()
    bicubic = BASELINES["bicubic"].run(lr, msi, Observation(SCALE))
    assert (result - cube).pow(2).mean() <= (bicubic - cube).pow(2).mean() * (1 if method == "bicubic" else 0.5)


def test_a_batch_is_the_images_fused_one_by_one():
    pairs = [_simulated(seed) for seed in (1, 2)]
    lr, msi = torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs])
    observation = Observation(SCALE, SIGMA)  # the response estimated per image
    for method in BASELINES:
        together = BASELINES[method].run(lr, msi, observation)
        for index in range(2):
            alone = BASELINES[method].run(lr[index:index + 1], msi[index:index + 1], observation)
            assert _relative_error(together[index:index + 1], alone) < 1e-5, method


def test_the_response_is_estimated_from_the_pair():
    generator = torch.Generator().manual_seed(0)
    lr = torch.rand(1, BANDS, 32, 32, generator=generator, dtype=torch.float64)  # full-rank spectra
    estimated = estimate_srf(lr, to_msi(lr, NIKON), iterations=3000)
    assert (estimated >= 0).all() and torch.allclose(estimated[0], NIKON, atol=1e-6)


def test_successive_projection_finds_the_pure_pixels():
    spectra = torch.eye(4, dtype=torch.float64) + 0.1
    mixed = spectra @ torch.softmax(torch.randn(4, 50, generator=torch.Generator().manual_seed(0), dtype=torch.float64), dim=0)
    rows = torch.cat([mixed[:, :10], spectra, mixed[:, 10:]], dim=1)  # pure pixels at 10..13
    assert sorted(successive_projection(rows, 4).tolist()) == [10, 11, 12, 13]


def test_cnmf_clips_negative_values_and_stays_finite():
    lr, msi, _ = _simulated()
    lr[..., :2, :2] = -0.5
    assert torch.isfinite(cnmf(lr, msi, Observation(SCALE, SIGMA, NIKON))).all()


def test_the_choice_of_baselines():
    assert chosen_baselines(["all"]) == tuple(BASELINES)
    assert chosen_baselines(["none"]) == ()
    assert chosen_baselines(["fuse", "cs", "fuse"]) == ("fuse", "cs")
    with pytest.raises(ValueError, match="unknown baseline gsa: choose from bicubic, cs, sfim, glp, cnmf, fuse"):
        chosen_baselines(["cs", "gsa"])


def test_observation_says_what_was_given_and_assumed():
    assert "given" in Observation(8, 2.0, NIKON).describe()["srf"]
    told = Observation(8, 2.0, blur_known=False).describe()
    assert "estimated" in told["srf"] and "assumed" in told["blur"]


# --- the commands


def _scene_folder(folder):
    folder.mkdir()
    for seed, name in enumerate(("one", "two")):
        np.save(folder / f"{name}.npy", synthetic_scene(64, seed=seed).numpy() * 3000)  # chw, in "counts"
    return folder


def test_dhif_test_scores_every_baseline_without_a_model(tmp_path, capsys):
    data, out = _scene_folder(tmp_path / "scenes"), tmp_path / "results"
    assert main(["test", "--data", str(data), "--baselines", "all", "--scale", "4", "--out", str(out),
                 "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    rows = json.loads((out / "metrics.json").read_text())
    assert [r["method"] for r in rows if r["scene"] == "one"] == list(BASELINES)
    assert all(r["seconds"] > 0 and np.isfinite(r["psnr"]) for r in rows)
    means = {r["method"]: r["psnr"] for r in rows if r["scene"] == "mean"}
    assert all(means[m] > means["bicubic"] for m in BASELINES if m != "bicubic")
    assert all(m in printed for m in BASELINES) and "seconds" in printed
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["baselines"] == list(BASELINES) and protocol["checkpoint"] is None and protocol["scale"] == 4
    assert (out / "figures" / "one_error.png").exists()


@pytest.mark.parametrize("extra, message", [
    (["--baselines", "cs", "gsa"], "unknown baseline gsa: choose from"),
    (["--baselines", "none"], "nothing to test: give --checkpoint"),
    (["--save-cubes", "npy"], "--save-cubes saves DHIF-Net's cubes: give --checkpoint"),
    (["--checkpoint", "model.pt", "--scale", "4"], "--scale is the checkpoint's own"),
])
def test_dhif_test_refuses_a_bad_choice_in_one_line_before_any_work(tmp_path, capsys, extra, message):
    data, out = _scene_folder(tmp_path / "scenes"), tmp_path / "results"
    assert main(["test", "--data", str(data), "--out", str(out), "--device", "cpu", *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and not out.exists()


def test_dhif_fuse_reports_and_saves_the_chosen_baselines(tmp_path, capsys):
    cube = synthetic_scene(128, seed=5).double()
    np.save(tmp_path / "lr.npy", (degrade(cube[None], 2, 2.0)[0] * 4000).numpy())  # a uint16-like HSI
    np.save(tmp_path / "msi.npy", (to_msi(cube, NIKON) * 255).numpy())  # an 8-bit-like RGB image
    out = tmp_path / "fused"
    assert main(["fuse", "--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy"),
                 "--lr-layout", "chw", "--msi-layout", "chw", "--steps", "8", "--width", "4", "--stages", "1",
                 "--head-width", "8", "--device", "cpu", "--out", str(out), "--baselines", "glp", "fuse", "cnmf",
                 "--save-baselines"]) == 0
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    scores = report["reduced_resolution"]
    assert set(scores) == {"dhif", "glp", "fuse", "cnmf", "protocol"}
    assert all(scores[m]["seconds"] >= 0 and scores[m]["psnr"] > 25 for m in ("glp", "fuse", "cnmf"))
    assert set(report["baselines"]["seconds_full_resolution"]) == {"glp", "fuse", "cnmf"}
    assert "estimated" in report["baselines"]["full_resolution"]["srf"]
    # Over the protocol's 2 x 2 window every sigma makes one box filter: the assumed one is kept.
    assert "estimated" in report["baselines"]["full_resolution"]["blur"]
    assert report["observation"]["psf"] == {"how": "estimated", "shape": "Gaussian", "sigma_hr_pixels": 2.0,
                                            "window_hr_pixels": 2}
    for method in ("glp", "fuse", "cnmf"):
        fused = np.load(out / f"{method}.npy")  # in the LR-HSI's units, not the RGB image's
        assert fused.shape == (31, 128, 128) and 2000 < fused.max() < 6000
        assert "GLP-HS" in printed and "CNMF" in printed
    assert not (out / "cs.npy").exists()


@pytest.mark.slow
def test_sfim_stays_in_range_beside_the_dark_regions_of_a_real_scene(cave_dir):
    """Beside CAVE's black backgrounds an MSI channel's low-pass is near zero, and there its
    ratio was noise: SFIM-HS gave values of thousands on watercolors (peak 0.84)."""
    from dhif.data import read_cave_scene

    cube = read_cave_scene(cave_dir / "watercolors_ms").double()[None]
    lr, msi = degrade(cube, 8), to_msi(cube, NIKON.double())
    fused = BASELINES["sfim"].run(lr, msi, Observation(8))
    assert fused.abs().max() < 1.5 * cube.max()
    bicubic = BASELINES["bicubic"].run(lr, msi, Observation(8))
    assert (fused - cube).pow(2).mean() < 0.1 * (bicubic - cube).pow(2).mean()


@pytest.mark.slow
def test_every_baseline_on_the_real_cave_test_scene(cave_dir, tmp_path):
    out = tmp_path / "results"
    assert main(["test", "--cave", str(cave_dir), "--scenes", "watercolors", "--baselines", "all", "--out", str(out),
                 "--no-figures", "--device", "cpu"]) == 0
    scores = {r["method"]: r for r in json.loads((out / "metrics.json").read_text()) if r["scene"] == "mean"}
    # The authors' protocol at x8: every fusion method gains well over 5 dB on bicubic (25.9 dB).
    assert 25 < scores["bicubic"]["psnr"] < 27
    assert all(scores[m]["psnr"] > scores["bicubic"]["psnr"] + 5 for m in BASELINES if m != "bicubic")
    assert all(scores[m]["sam"] < scores["bicubic"]["sam"] for m in BASELINES if m != "bicubic")


def test_the_fuse_verdict_names_the_best_method_and_what_to_do():
    from dhif.fuse import format_scores, verdict

    scores = {"dhif": {"psnr": 30.0, "sam": 3.0, "ergas": 2.0, "seconds": 1.5},
              "fuse": {"psnr": 32.5, "sam": 2.0, "ergas": 1.0, "seconds": 0.25}}
    line = verdict(scores, {"trained_here": True}, 4, 32)
    assert line.startswith("best at reduced resolution: FUSE (PSNR 32.50 dB; DHIF-Net 30.00 dB)")
    assert "--steps" in line and "fuse.npy, written with --save-baselines" in line
    # A model applied as trained ranks low at reduced resolution: no baseline is recommended over it.
    line = verdict(scores, {"trained_here": False}, 8, 32)
    assert "no verdict on DHIF-Net, applied as trained" in line and "8 x coarser" in line and ".npy" not in line
    # Two reduced LR pixels a side (x16 on a 512 x 512 scene) rank nothing.
    assert verdict(scores, {"trained_here": True}, 16, 2).endswith("2 pixels a side, too few to rank methods")
    scores["dhif"]["psnr"] = 33.0
    assert verdict(scores, {}, 4, 32) == "best at reduced resolution: DHIF-Net (PSNR 33.00 dB; FUSE 32.50 dB)"
    assert "no baselines chosen" in verdict({"dhif": scores["dhif"]}, {}, 4, 32)
    table = format_scores(scores).splitlines()
    assert table[0].split()[-1] == "seconds" and table[2].split() == ["FUSE", "32.50", "2.00", "1.000", "0.25"]


def test_dhif_fuse_with_no_baselines(tmp_path, capsys):
    cube = synthetic_scene(64, seed=6)
    np.save(tmp_path / "lr.npy", degrade(cube[None], 2, 2.0)[0].numpy())
    np.save(tmp_path / "msi.npy", to_msi(cube, NIKON.float()).numpy())
    out = tmp_path / "fused"
    assert main(["fuse", "--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy"),
                 "--lr-layout", "chw", "--msi-layout", "chw", "--steps", "8", "--width", "4", "--stages", "1",
                 "--head-width", "8", "--device", "cpu", "--out", str(out), "--baselines", "none"]) == 0
    assert "no baselines chosen" in capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert set(report["reduced_resolution"]) == {"dhif", "protocol"} and report["baselines"]["methods"] == []


def test_component_substitution_of_a_grey_image_stored_as_rgb_is_that_of_the_grey_image():
    """Three equal channels make the regression singular; the gains of least norm inject the
    detail of the one image they are."""
    from dhif.baselines import Observation, component_substitution
    from dhif.data import degrade
    from dhif.data.synthetic import synthetic_scene

    scene = synthetic_scene(64, 8, seed=3)[None]
    grey = scene.mean(1, keepdim=True)
    lr, observation = degrade(scene[0], 4)[None], Observation(4)
    expected = component_substitution(lr, grey, observation)
    result = component_substitution(lr, grey.expand(-1, 3, -1, -1).contiguous(), observation)
    assert torch.isfinite(result).all()
    torch.testing.assert_close(result, expected, atol=1e-4, rtol=1e-4)
