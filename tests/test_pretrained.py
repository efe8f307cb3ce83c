"""The model that ships with dhif: a weights-only file that loads without training and
gives the output recorded when it was made; `--pretrained` in the commands."""
import json

import numpy as np
import pytest
import torch

from dhif.cli import main
from dhif.data import degrade, spectral_response, to_msi
from dhif.data.synthetic import synthetic_scene
from dhif.pretrained import SHIPPED_SCALES, fingerprint, pretrained_model, pretrained_path, pretrained_record

shipped_scales = pytest.mark.parametrize("scale", SHIPPED_SCALES, ids=[f"x{s}" for s in SHIPPED_SCALES])


@shipped_scales
def test_the_shipped_file_is_weights_and_configuration_only(scale):
    checkpoint = torch.load(pretrained_path(scale), weights_only=True)  # refuses any pickled code
    assert set(checkpoint) == {"model", "config"}
    assert all(t.dtype == torch.float32 for t in checkpoint["model"].values())
    assert pretrained_path(scale).stat().st_size < 8e6  # small enough to ship in the package


@shipped_scales
def test_the_shipped_model_reproduces_its_recorded_output(scale):
    recorded = pretrained_record(scale)["fingerprint"]
    now = fingerprint(pretrained_model(scale))
    assert now["mean"] == pytest.approx(recorded["mean"], rel=1e-4)
    assert now["std"] == pytest.approx(recorded["std"], rel=1e-3)
    for (*index, value), (*_, expected) in zip(now["voxels"], recorded["voxels"]):
        assert value == pytest.approx(expected, abs=1e-4), index


@shipped_scales
def test_the_shipped_model_is_the_recorded_recipe(scale):
    model, record = pretrained_model(scale), pretrained_record(scale)
    config = torch.load(pretrained_path(scale), weights_only=True)["config"]
    assert (model.scale, model.hsi_channels, model.msi_channels) == (scale, 31, 3)
    assert config["initial_estimate"] == "cs" and "--preset cpu" in record["command"]
    assert record["held_out"]["mean"]["dhif"]["psnr"] > record["held_out"]["mean"]["cs"]["psnr"]
    assert not set(record["held_out"]["scenes"]) & set(config["train_scenes"])  # held out means not trained on


@shipped_scales
def test_the_shipped_model_beats_bicubic_on_generated_data(scale):
    scene = synthetic_scene(128, seed=3)
    lr_hsi, hr_msi = degrade(scene, scale), to_msi(scene, spectral_response("nikon_d700"))
    with torch.no_grad():
        fused = pretrained_model(scale)(lr_hsi[None], hr_msi[None])[0]
    upsampled = torch.nn.functional.interpolate(lr_hsi[None], scale_factor=scale, mode="bicubic")[0]
    assert (fused - scene).pow(2).mean() < 0.5 * (upsampled - scene).pow(2).mean()


def _pair(tmp_path, bands=31, scale=8):
    scene = synthetic_scene(128, bands=bands, seed=5)
    srf = spectral_response("nikon_d700") if bands == 31 else torch.rand(3, bands)
    np.save(tmp_path / "lr.npy", degrade(scene, scale).numpy())
    np.save(tmp_path / "msi.npy", to_msi(scene, srf / srf.sum(1, keepdim=True)).numpy())
    return ["fuse", "--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy"), "--lr-layout",
            "chw", "--msi-layout", "chw", "--out", str(tmp_path / "fused"), "--pretrained"]


def test_fuse_with_the_shipped_model_trains_nothing(tmp_path, capsys):
    assert main(_pair(tmp_path)) == 0
    report = json.loads((tmp_path / "fused" / "report.json").read_text())
    assert not (tmp_path / "fused" / "run").exists()  # nothing trained
    assert str(pretrained_path()) in json.dumps(report)
    assert np.load(tmp_path / "fused" / "fused.npy").shape == (31, 128, 128)


def test_fuse_applies_a_fitting_shipped_model_to_a_pair_too_small_to_fine_tune_it(tmp_path, capsys):
    argv = _pair(tmp_path)[:-1]  # no --pretrained: 16 x 16 LR pixels at x8, too few to train on
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "too small to fine-tune it at reduced resolution (at least 128 x 128): applying it unchanged" in out
    report = json.loads((tmp_path / "fused" / "report.json").read_text())
    assert not (tmp_path / "fused" / "run").exists() and report["model"]["checkpoint"] == str(pretrained_path(8))
    assert main(argv + ["--from-scratch", "--overwrite"]) == 2  # a new model needs pixels to learn from
    assert "needs at least 128 x 128" in capsys.readouterr().err


@pytest.mark.parametrize("bands, scale, says", [
    (20, 8, "fuses 31-band LR-HSIs with 3-channel HR-MSIs at x8; this pair has 20 bands"),
    (31, 2, "dhif ships no model for x2; shipped: x")])
def test_fuse_refuses_a_pair_no_shipped_model_fits(tmp_path, capsys, bands, scale, says):
    assert main(_pair(tmp_path, bands, scale)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and says in err[0]
    assert not (tmp_path / "fused").exists()


def test_pretrained_and_checkpoint_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(_pair(tmp_path) + ["--checkpoint", "x.pt"])
    assert "not allowed with argument" in capsys.readouterr().err


@pytest.mark.slow
@shipped_scales
def test_dhif_test_with_the_shipped_model_beats_component_substitution_on_a_held_out_scene(tmp_path, cave_dir,
                                                                                         scale):
    out = tmp_path / "results"
    assert main(["test", "--cave", str(cave_dir), "--pretrained", "--scale", str(scale), "--scenes", "watercolors",
                 "--out", str(out), "--no-figures", "--device", "cpu"]) == 0
    rows = {r["method"]: r for r in json.loads((out / "metrics.json").read_text()) if r["scene"] == "watercolors"}
    assert rows["dhif"]["psnr"] > rows["cs"]["psnr"] > rows["bicubic"]["psnr"]
    assert json.loads((out / "protocol.json").read_text())["checkpoint"] == str(pretrained_path(scale))


def test_the_shipped_model_is_asked_for_by_scale_and_another_scale_is_one_clear_error():
    assert pretrained_model(scale=8, device="cpu").scale == 8
    with pytest.raises(ValueError, match="dhif ships no model for x2; shipped: x"):
        pretrained_model(scale=2)
    with pytest.raises(TypeError):
        pretrained_model(8, "cpu")  # the device by name: pretrained_model("cpu") would read as "the CPU model"
