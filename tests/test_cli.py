"""The `dhif` command end to end, on tiny settings."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from dhif.cli import main
from dhif.checkpoint import load_checkpoint

from authors_format import authors_state_dict, pickled_authors_model
from helpers import SHARED_DATA


def test_info(capsys):
    assert main(["info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert "build" in info and "cpu" in info["impls"]


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "dhif"  # installed beside the interpreter by pip
    for command in ([str(script), "--help"], [sys.executable, "-m", "dhif.cli", "--help"]):
        completed = subprocess.run(command, capture_output=True, text=True)
        assert completed.returncode == 0 and "demo" in completed.stdout, command


def test_demo_runs_end_to_end(tmp_path, capsys):
    assert main(["demo", "--minutes", "0.05", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    last = out.strip().splitlines()[-1]
    assert last.startswith("demo result") and "bicubic: PSNR" in last and "DHIF-Net: PSNR" in last
    for suffix in ("composite", "error", "spectra"):
        assert (tmp_path / "figures" / f"synthetic_{suffix}.png").stat().st_size > 1000
    rows = json.loads((tmp_path / "metrics.json").read_text())
    assert {r["method"] for r in rows} == {"dhif", "bicubic", "cs"}


def test_convert_writes_a_weights_only_checkpoint(tmp_path):
    pickled_authors_model(authors_state_dict(dtype=torch.float32), tmp_path / "model_500.pth")
    assert main(["convert", str(tmp_path / "model_500.pth"), str(tmp_path / "converted.pt")]) == 0
    checkpoint = load_checkpoint(tmp_path / "converted.pt")
    assert checkpoint["config"]["scale"] == 8 and checkpoint["model"]["eta"].shape == (4,)


def test_errors_exit_non_zero(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out.pt")]) == 2
    assert "error" in capsys.readouterr().err


def test_train_and_test_on_real_cave(cave_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--cave", str(cave_dir), "--out", str(run), "--train-scenes", "balloons", "--epochs", "1",
                 "--samples", "4", "--batch-size", "2", "--patch", "32", "--width", "4", "--stages", "1",
                 "--head-width", "8", "--workers", "0", "--val-every", "0", "--device", "cpu"]) == 0
    assert (run / "last.pt").exists()
    assert main(["test", "--cave", str(cave_dir), "--checkpoint", str(run / "last.pt"), "--out", str(tmp_path / "res"),
                 "--scenes", "watercolors", "--tile", "256", "--overlap", "32", "--save-cubes", "npy",
                 "--device", "cpu"]) == 0
    assert "watercolors" in capsys.readouterr().out
    assert (tmp_path / "res" / "cubes" / "watercolors.npy").exists()
    assert (tmp_path / "res" / "figures" / "watercolors_composite.png").exists()


def test_fuse_the_real_houston_pair(tmp_path):
    houston = SHARED_DATA / "houston" / "houston_dataset.mat"
    if not houston.exists():
        pytest.skip("shared data not present")
    assert main(["fuse", "--lr-hsi", str(houston), "--lr-key", "hyprImg", "--hr-msi", str(houston), "--msi-key",
                 "rgbImg", "--minutes", "0.02", "--width", "4", "--stages", "1", "--head-width", "8",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["scale"] == 4 and "reduced_resolution" in report
    import numpy as np

    assert np.load(tmp_path / "fused.npy").shape == (48, 512, 512)
    assert (tmp_path / "fused_composite.png").exists()


BAD_ARGUMENTS = [
    ["train", "--cave", "x", "--patch", "0"],
    ["train", "--cave", "x", "--patch", "-8"],
    ["train", "--cave", "x", "--width", "0"],
    ["train", "--cave", "x", "--samples", "0"],
    ["train", "--cave", "x", "--epochs", "-1"],
    ["train", "--cave", "x", "--checkpoint-every", "-1"],
    ["train", "--cave", "x", "--lr", "nan"],
    ["test", "--cave", "x", "--checkpoint", "c.pt", "--overlap", "-8"],
    ["fuse", "--lr-hsi", "a.npy", "--hr-msi", "b.npy", "--minutes", "0"],
    ["demo", "--minutes", "-1"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=" ".join)
def test_nonsense_arguments_are_refused_in_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"dhif {argv[0]}: error: argument ") and "expected" in last


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", [["train", "--cave", "nowhere"], ["demo"]])
def test_unavailable_device_is_one_error_line(command, capsys, tmp_path):
    assert main(command + ["--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dhif {command[0]}: error: --device cuda: CUDA is not available")
    assert not (tmp_path / "out").exists()
