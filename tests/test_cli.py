"""The `dhif` command end to end, on tiny settings."""
import json
import re
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dhif.baselines import BASELINES
from dhif.checkpoint import load_checkpoint
from dhif.cli import main
from dhif.demo import NETWORKS, run_demo
from dhif.report import METHOD_NAMES

from authors_format import authors_state_dict, pickled_authors_model


def test_info(capsys):
    assert main(["info"]) == 0
    printed = capsys.readouterr()
    info = json.loads(printed.out)
    assert "build" in info and "cpu" in info["impls"]
    assert info["build"]["torch_installed"] == torch.__version__
    assert printed.err == ""  # the JSON alone


@pytest.mark.slow
def test_console_script_is_installed():
    script = Path(sys.executable).parent / "dhif"  # installed beside the interpreter by pip
    for command in ([str(script), "--help"], [sys.executable, "-m", "dhif.cli", "--help"]):
        completed = subprocess.run(command, capture_output=True, text=True)
        assert completed.returncode == 0 and "demo" in completed.stdout, command


def _summary(capsys):
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_help_gives_every_option_a_text_and_default_and_names_the_scenes():
    from dhif.cli import build_parser
    from dhif.data import CAVE_TEST_SCENES, CAVE_TRAIN_SCENES

    commands = build_parser()._subparsers._group_actions[0].choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, f"dhif {name} {'/'.join(action.option_strings) or action.dest} has no help text"
        text = command.format_help()
        if name in ("train", "test"):
            assert all(scene in text for scene in CAVE_TRAIN_SCENES + CAVE_TEST_SCENES), name
        assert "(default: None)" not in text and "(default: False)" not in text, name
        for option in text.split("\n  -")[1:]:
            assert option.count("default") <= 1, option
    train_help = commands["train"].format_help()
    assert "(default: 500)" in train_help and "(default: 0.0003)" in train_help


def test_demo_runs_a_fixed_budget_and_prints_the_same_numbers(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--steps", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    # The synthetic scenes mix a few spectra, CNMF's own model: it is the better start there.
    assert "dhif demo: the network starts from CNMF, the better on the training data (component substitution " \
           in printed
    first = printed.strip().splitlines()[-1]
    assert first.startswith("demo result (synthetic, x8, 8 steps): ")
    for label in ("bicubic: PSNR", "component substitution: PSNR", "DHIF-Net: PSNR",
                  "DHIF-Net (shipped, fine-tuned): PSNR"):
        assert label in first
    for suffix in ("composite", "error", "spectra"):
        assert (out / "figures" / f"synthetic_{suffix}.png").stat().st_size > 1000
    rows = json.loads((out / "metrics.json").read_text())
    assert {r["method"] for r in rows} == {"dhif", "fine_tuned", *BASELINES}
    classical = {r["method"]: r["psnr"] for r in rows if r["method"] in BASELINES}
    assert f"{METHOD_NAMES[max(classical, key=classical.get)]} (best classical): PSNR" in first
    assert main(["demo", "--steps", "8", "--out", str(out), "--overwrite"]) == 0
    assert _summary(capsys) == first  # seeded and counted in steps: the same numbers again


def test_the_cave_demo_takes_a_scene_that_no_shipped_model_learnt_from(capsys):
    from dhif.demo import CAVE_DEMO_SCENE, cave_demo_scene
    from dhif.pretrained import SHIPPED_SCALES, pretrained_record

    learnt = {name for scale in SHIPPED_SCALES for name in pretrained_record(scale)["train_scenes"]}
    assert CAVE_DEMO_SCENE not in learnt
    trained_on = {name: None for name in sorted(learnt)}
    assert cave_demo_scene({**trained_on, "flowers": None, CAVE_DEMO_SCENE: None}) == CAVE_DEMO_SCENE
    assert cave_demo_scene({**trained_on, "flowers": None}) == "flowers"
    assert capsys.readouterr().out == ""
    # A folder of the shipped model's training scenes alone: the demo goes on, and says so.
    assert cave_demo_scene(trained_on) == next(iter(trained_on))
    assert "not held out" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("data, scene", [(None, "synthetic"), ("cave", "watercolors_bottom")])
def test_the_demo_puts_both_networks_above_every_classical_method(tmp_path, request, data, scene):
    """The README's `dhif demo` and `dhif demo --cave` at their default budget: on held-out
    data (a CAVE scene that no shipped model learnt from), both networks score above every
    classical method."""
    by_method = run_demo(request.getfixturevalue("cave_dir") if data else None, out=tmp_path / "demo", device="cpu")
    assert next(iter(json.loads((tmp_path / "demo" / "metrics.json").read_text())))["scene"] == scene
    strongest = max(by_method[m]["psnr"] for m in BASELINES)
    assert min(by_method[m]["psnr"] for m in NETWORKS) > strongest, by_method


def test_demo_keeps_an_earlier_run_without_overwrite(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "run").mkdir(parents=True)
    (out / "run" / "notes.txt").write_text("mine")
    (out / "metrics.csv").write_text("mine")
    assert main(["demo", "--steps", "8", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0] and "run, metrics.csv" in err[0]
    assert (out / "run" / "notes.txt").read_text() == "mine" and (out / "metrics.csv").read_text() == "mine"


@pytest.mark.parametrize("stopped_at_step, run", [(1, "run"), (9, "fine_tune")])
def test_ctrl_c_is_one_line_and_the_demo_resumes(tmp_path, capsys, monkeypatch, stopped_at_step, run):
    """Stopped in either of its two runs of 8 steps (the network from nothing, then the
    shipped one fine-tuned), the same command resumes and prints what an uninterrupted demo
    prints."""
    import dhif.training.loop

    original, steps = dhif.training.loop.train_step, []

    def press_ctrl_c(*args):
        steps.append(None)
        if len(steps) == stopped_at_step:
            os.kill(os.getpid(), signal.SIGINT)
        return original(*args)

    monkeypatch.setattr(dhif.training.loop, "train_step", press_ctrl_c)
    assert main(["demo", "--steps", "8", "--out", str(tmp_path / "stopped")]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"dhif demo: SIGINT stopped training at epoch 1, step 1 of 8; the run's state is saved in "
                       f"{tmp_path / 'stopped' / run / 'last.pt'}; run the same command to resume")
    assert (tmp_path / "stopped" / run / "last.pt").exists()
    monkeypatch.setattr(dhif.training.loop, "train_step", original)
    assert main(["demo", "--steps", "8", "--out", str(tmp_path / "stopped")]) == 0
    resumed = capsys.readouterr().out.splitlines()[-1]
    assert main(["demo", "--steps", "8", "--out", str(tmp_path / "straight")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == resumed


def test_unwritable_output_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "a_file").write_text("")
    assert main(["demo", "--steps", "8", "--out", str(tmp_path / "a_file" / "demo")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("dhif demo: error: cannot write to")


def _pair(tmp_path, lr_size=32, scale=2, nan=False):
    rng = np.random.default_rng(0)
    lr = rng.random((4, lr_size, lr_size)).astype(np.float32)
    if nan:
        lr[1, 2, 3] = np.nan
    msi = rng.random((3, lr_size * scale, lr_size * scale)).astype(np.float32)
    np.save(tmp_path / "lr.npy", lr)
    np.save(tmp_path / "msi.npy", msi)
    return ["fuse", "--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy"), "--lr-layout", "chw",
            "--msi-layout", "chw", "--minutes", "0.01", "--width", "4", "--stages", "1", "--head-width", "8",
            "--device", "cpu", "--out", str(tmp_path / "fused")]


@pytest.mark.parametrize("scale", [3, 6])
def test_fuse_at_scales_that_are_not_powers_of_two(tmp_path, scale):
    argv = _pair(tmp_path, lr_size=16 * scale, scale=scale)
    argv[argv.index("--minutes"):argv.index("--minutes") + 2] = ["--steps", "8"]
    assert main(argv) == 0
    report = json.loads((tmp_path / "fused" / "report.json").read_text())
    assert report["scale"] == scale and report["model"]["settings"]["patch"] % scale == 0
    assert np.load(tmp_path / "fused" / "fused.npy").shape == (4, 16 * scale * scale, 16 * scale * scale)


def test_fuse_refuses_nan_inputs_in_one_line(tmp_path, capsys):
    assert main(_pair(tmp_path, nan=True)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 NaN or infinite values" in err[0]
    assert not (tmp_path / "fused").exists()


def test_fuse_refuses_an_lr_hsi_too_small_to_train_on(tmp_path, capsys):
    assert main(_pair(tmp_path, lr_size=16)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "at least 32 x 32" in err[0] and "--checkpoint" in err[0]


def test_fuse_writes_valid_json_and_keeps_earlier_results(tmp_path, capsys):
    argv = _pair(tmp_path)
    assert main(argv) == 0
    report = json.loads((tmp_path / "fused" / "report.json").read_text(), parse_constant=pytest.fail)
    assert report["scale"] == 2
    (tmp_path / "fused" / "run" / "notes.txt").write_text("mine")
    assert main(argv) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "fused" / "run" / "notes.txt").read_text() == "mine"
    assert main(argv + ["--overwrite"]) == 0


def _write(tmp_path, name, shape, value=None):
    array = np.random.default_rng(1).random(shape).astype(np.float32) if value is None else \
        np.full(shape, value, np.float32)
    np.save(tmp_path / name, array)
    return str(tmp_path / name)


BAD_PAIRS = {  # (LR-HSI shape, HR-MSI shape, extra arguments) -> what the one line says
    "same size": ((4, 64, 64), (3, 64, 64), [], "both 64 x 64 pixels"),
    "swapped": ((3, 128, 128), (4, 32, 32), [], "are they swapped?"),
    "swapped bands": ((3, 32, 32), (4, 128, 128), [], "the LR-HSI must have more. Are --lr-hsi and --hr-msi swapped?"),
    "above 32": ((4, 2, 2), (3, 96, 96), [], "DHIF-Net fuses at integer scales from 2 to 32"),
    "not an integer": ((4, 32, 32), (3, 80, 80), [], "is not the LR-HSI (32 x 32) times the scale 2"),
    "scale does not divide": ((4, 32, 32), (3, 128, 120), [], "is not the LR-HSI (32 x 32) times the scale 4"),
    "given scale does not fit": ((4, 32, 32), (3, 128, 128), ["--scale", "2"], "times the scale 2"),
    "2-D": ((32, 32), (3, 128, 128), [], "2-D array of shape (32, 32)"),
    "wavelengths": ((4, 32, 32), (3, 64, 64), ["--wavelengths", "nm.npy"], "gives 5 values for 4 bands"),
    "wavelength range": ((4, 32, 32), (3, 64, 64), ["--wavelengths", "400-700"], "give START:STOP in nm"),
}


@pytest.mark.parametrize("case", BAD_PAIRS)
def test_bad_pairs_are_one_line_before_anything_is_written(tmp_path, capsys, case):
    lr_shape, msi_shape, extra, message = BAD_PAIRS[case]
    np.save(tmp_path / "nm.npy", np.arange(5.0))
    extra = [str(tmp_path / e) if e.endswith(".npy") else e for e in extra]
    argv = ["fuse", "--lr-hsi", _write(tmp_path, "lr.npy", lr_shape), "--hr-msi", _write(tmp_path, "msi.npy", msi_shape),
            "--lr-layout", "chw", "--msi-layout", "chw", "--out", str(tmp_path / "out"), *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out").exists()


def test_a_constant_cube_is_refused(tmp_path, capsys):
    argv = ["fuse", "--lr-hsi", _write(tmp_path, "lr.npy", (4, 32, 32), value=0.0), "--hr-msi",
            _write(tmp_path, "msi.npy", (3, 128, 128)), "--lr-layout", "chw", "--msi-layout", "chw",
            "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    assert "has the same value (0) everywhere" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_missing_array_name_is_an_unquoted_line(tmp_path, capsys):
    np.savez(tmp_path / "pair.npz", hsi=np.zeros((4, 32, 32), dtype=np.float32))
    argv = _pair(tmp_path)
    argv[argv.index("--lr-hsi") + 1] = str(tmp_path / "pair.npz")
    assert main(argv + ["--lr-key", "hyprImg"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dhif fuse: error: {tmp_path / 'pair.npz'} has no array 'hyprImg'")


@pytest.mark.slow
def test_fuse_refuses_a_container_of_several_cubes_without_a_key(tmp_path):
    lr_hsi = np.random.default_rng(0).random((4, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "pair.npz", lr=lr_hsi, msi=np.zeros((3, 64, 64), np.float32))
    completed = subprocess.run([sys.executable, "-m", "dhif.cli", "fuse", "--lr-hsi", str(tmp_path / "pair.npz"),
                                "--hr-msi", str(tmp_path / "pair.npz"), "--msi-key", "msi", "--lr-layout", "chw",
                                "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert completed.returncode == 2
    assert completed.stderr.strip() == (f"dhif fuse: error: {tmp_path / 'pair.npz'} holds several arrays (lr (4, 16, "
                                        "16), msi (3, 64, 64)); name the one to read (--lr-key or --msi-key for "
                                        "dhif fuse)")
    assert not (tmp_path / "out").exists()


def test_an_array_name_for_a_npy_file_is_refused(tmp_path, capsys):
    assert main(_pair(tmp_path) + ["--lr-key", "hyprImg"]) == 2
    assert "single array" in capsys.readouterr().err


def test_convert_writes_a_weights_only_checkpoint(tmp_path):
    pickled_authors_model(authors_state_dict(dtype=torch.float32), tmp_path / "model_500.pth")
    assert main(["convert", str(tmp_path / "model_500.pth"), str(tmp_path / "converted.pt")]) == 0
    checkpoint = load_checkpoint(tmp_path / "converted.pt")
    assert checkpoint["config"]["scale"] == 8 and checkpoint["model"]["eta"].shape == (4,)


def test_errors_exit_non_zero(tmp_path, capsys):
    assert main(["convert", str(tmp_path / "missing.pth"), str(tmp_path / "out.pt")]) == 2
    assert "error" in capsys.readouterr().err


def test_convert_never_replaces_a_file_without_overwrite(tmp_path, capsys):
    source = tmp_path / "model_500.pth"
    pickled_authors_model(authors_state_dict(dtype=torch.float32), source)
    original = source.read_bytes()
    assert main(["convert", str(source), str(source)]) == 2
    assert "the input file itself" in capsys.readouterr().err and source.read_bytes() == original
    assert main(["convert", str(source), str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.tmp"))
    (tmp_path / "out.pt").write_text("mine")
    assert main(["convert", str(source), str(tmp_path / "out.pt")]) == 2
    assert "--overwrite" in capsys.readouterr().err and (tmp_path / "out.pt").read_text() == "mine"
    assert main(["convert", str(source), str(tmp_path / "out.pt"), "--overwrite"]) == 0


@pytest.mark.parametrize("content,message", [(b"", "the file is empty"),
                                             (b"hello, this is text\n", "it is not a PyTorch file")])
def test_unreadable_files_are_described(tmp_path, capsys, content, message):
    (tmp_path / "file.pt").write_bytes(content)
    assert main(["convert", str(tmp_path / "file.pt"), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_a_module_that_contains_itself_is_refused_in_one_line(tmp_path, capsys):
    loop = torch.nn.Sequential(torch.nn.Conv2d(1, 1, 1))
    loop.add_module("again", loop)
    torch.save(loop, tmp_path / "loop.pt")
    assert main(["convert", str(tmp_path / "loop.pt"), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "contains itself" in err[0]


def test_checkpoint_errors_say_what_to_do(tmp_path, capsys):
    pickled_authors_model(authors_state_dict(dtype=torch.float32), tmp_path / "model_500.pth")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    (tmp_path / "empty.pt").write_bytes(b"")
    expected = {"model_500.pth": "dhif convert", "other.pt": "not a dhif checkpoint", "empty.pt": "the file is empty"}
    for name, message in expected.items():
        assert main(["test", "--cave", str(tmp_path), "--checkpoint", str(tmp_path / name), "--device", "cpu",
                     "--out", str(tmp_path / "results")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0], (name, err)


@pytest.mark.slow
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
    metrics = (tmp_path / "res" / "metrics.csv").read_text()
    test = ["test", "--cave", str(cave_dir), "--checkpoint", str(run / "last.pt"), "--out", str(tmp_path / "res"),
            "--scenes", "watercolors", "--device", "cpu"]
    assert main(test) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "res" / "metrics.csv").read_text() == metrics
    assert main(test[:-4] + ["--scenes", "watercolours", "--device", "cpu"]) == 2
    assert "no scene 'watercolours'" in capsys.readouterr().err


def test_scene_mistakes_are_named(cave_dir, tmp_path, capsys):
    base = ["train", "--cave", str(cave_dir), "--out", str(tmp_path / "run"), "--device", "cpu"]
    assert main(base + ["--train-scenes", "ballons"]) == 2
    err = capsys.readouterr().err
    assert "no scene 'ballons'" in err and "balloons" in err
    assert main(base + ["--train-scenes", "balloons", "--val-scenes", "balloons"]) == 2
    assert "both a training and a validation scene" in capsys.readouterr().err


@pytest.mark.slow
def test_fuse_the_real_houston_pair(tmp_path, shared_data):
    houston = shared_data("houston/houston_dataset.mat")
    assert main(["fuse", "--lr-hsi", str(houston), "--lr-key", "hyprImg", "--hr-msi", str(houston), "--msi-key",
                 "rgbImg", "--minutes", "0.02", "--width", "4", "--stages", "1", "--head-width", "8",
                 "--out", str(tmp_path), "--device", "cpu"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["scale"] == 4 and set(report["reduced_resolution"]) == {"dhif", "bicubic", "cs", "protocol"}
    assert report["inputs"]["lr_hsi"]["values"] == "uint16 values as stored (not divided by the type's maximum)"
    assert np.load(tmp_path / "fused.npy").shape == (512, 512, 48)  # hwc, as hyprImg is stored
    assert report["output"]["layout"] == "hwc" and report["wavelengths_nm"] is None
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
    ["fuse", "--lr-hsi", "a.npy", "--hr-msi", "b.npy", "--minutes", "1", "--steps", "8"],
    ["demo", "--steps", "0"],
]


@pytest.mark.parametrize("argv", BAD_ARGUMENTS, ids=" ".join)
def test_nonsense_arguments_are_refused_in_one_line(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"dhif {argv[0]}: error: argument ") and ("expected" in last or "not allowed" in last)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("command", [["train", "--cave", "nowhere"], ["demo"]])
def test_unavailable_device_is_one_error_line(command, capsys, tmp_path):
    assert main(command + ["--device", "cuda", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"dhif {command[0]}: error: --device cuda: CUDA is not available")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("lr_size, msi_size, given, expected", [
    ((32, 32), (256, 256), None, 8), ((16, 24), (48, 72), None, 3), ((10, 10), (60, 60), 6, 6),
    ((8, 8), (256, 256), None, 32)])
def test_pair_scale_reads_the_ratio_at_any_integer_scale(lr_size, msi_size, given, expected):
    from dhif.fuse import pair_scale

    assert pair_scale(torch.zeros(5, *lr_size), torch.zeros(3, *msi_size), given) == expected


@pytest.mark.parametrize("lr_size, msi_size, given, says", [
    ((32, 32), (96, 100), None, "is not the LR-HSI (32 x 32) times the scale 3"),
    ((32, 32), (64, 64), 4, "times the scale 4"),
    ((4, 4), (160, 160), None, "40 times the LR-HSI's size"),
    ((32, 32), (32, 32), None, "both 32 x 32 pixels")])
def test_pair_scale_says_what_is_wrong(lr_size, msi_size, given, says):
    from dhif.fuse import pair_scale

    with pytest.raises(ValueError, match=re.escape(says)):
        pair_scale(torch.zeros(5, *lr_size), torch.zeros(3, *msi_size), given)


def test_a_partial_cave_folder_names_the_missing_default_test_scenes_first(tmp_path, capsys):
    from dhif.data import CAVE_TEST_SCENES
    from test_data import write_cave_folder

    cave, _ = write_cave_folder(tmp_path / "cave", CAVE_TEST_SCENES[0], size=(64, 64))
    assert main(["test", "--cave", str(tmp_path / "cave"), "--baselines", "cs", "--no-figures", "--device", "cpu",
                 "--out", str(tmp_path / "res")]) == 0
    printed = capsys.readouterr()
    said = [line for line in printed.err.splitlines() if "default scenes are not under" in line]
    missing = ", ".join(CAVE_TEST_SCENES[1:])
    assert said == [f"dhif test: {len(CAVE_TEST_SCENES) - 1} of the {len(CAVE_TEST_SCENES)} default scenes are not "
                    f"under {tmp_path / 'cave'}, so this uses 1: missing {missing}"]
    assert "mean of 1" in printed.out


def test_fuse_speaks_in_the_files_layout_and_says_what_training_left_out(tmp_path, capsys):
    rng = np.random.default_rng(0)
    np.save(tmp_path / "lr.npy", rng.random((37, 35, 4)).astype(np.float32))  # bands last
    np.save(tmp_path / "msi.npy", rng.random((74, 70, 3)).astype(np.float32))
    assert main(["fuse", "--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy"), "--lr-layout",
                 "hwc", "--msi-layout", "hwc", "--steps", "8", "--width", "4", "--stages", "1", "--head-width", "8",
                 "--baselines", "none", "--device", "cpu", "--out", str(tmp_path / "fused")]) == 0
    out = capsys.readouterr().out
    assert np.load(tmp_path / "fused" / "fused.npy").shape == (74, 70, 4)
    assert "fused cube 74 x 70 x 4 (hwc, as the LR-HSI" in out
    assert "the LR-HSI's last 1 row and 1 column are left out of training (its size must be a multiple of the " \
           "scale, 2;" in out


@pytest.mark.parametrize("msi_kind, start", [("the scene's RGB image", "cs"), ("noise", "bicubic")])
def test_fuse_starts_its_network_from_the_better_classical_estimate(tmp_path, capsys, msi_kind, start):
    from dhif.data import degrade, spectral_response, to_msi
    from dhif.data.synthetic import synthetic_scene

    scene = synthetic_scene(128, 31, seed=3)
    msi = to_msi(scene, spectral_response()) if start == "cs" else torch.rand(3, 128, 128, generator=torch.Generator()
                                                                             .manual_seed(0))
    np.save(tmp_path / "lr.npy", degrade(scene, 2).numpy())
    np.save(tmp_path / "msi.npy", msi.numpy())
    assert main(["fuse", "--lr-hsi", str(tmp_path / "lr.npy"), "--hr-msi", str(tmp_path / "msi.npy"), "--lr-layout",
                 "chw", "--msi-layout", "chw", "--steps", "8", "--width", "4", "--stages", "1", "--head-width", "8",
                 "--baselines", "bicubic", "cs", "--device", "cpu", "--out", str(tmp_path / "fused")]) == 0
    report = json.loads((tmp_path / "fused" / "report.json").read_text())
    chosen = report["model"]["initial_estimate"]
    assert chosen["chosen"] == report["model"]["settings"]["initial_estimate"] == start, msi_kind
    scores = report["reduced_resolution"]
    better, worse = (scores[start]["psnr"], scores[({"cs", "bicubic"} - {start}).pop()]["psnr"])
    assert better > worse and chosen["how"].startswith("auto: the better initial estimate at reduced resolution")
    assert "dhif fuse: the network starts from" in capsys.readouterr().out
