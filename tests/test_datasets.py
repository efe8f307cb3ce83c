"""`dhif train --data` and `dhif test --data`: any folder of cubes, through the CAVE path's code."""
import json

import numpy as np
import pytest
import torch
from scipy.io import savemat

from dhif.cli import main
from dhif.data import MappedCube, find_scenes, load_scenes, read_cave_scene
from dhif.data.synthetic import synthetic_scene


TINY = ["--scale", "4", "--width", "4", "--stages", "1", "--head-width", "8", "--device", "cpu"]
TINY_TRAINING = ["--epochs", "1", "--samples", "4", "--batch-size", "2", "--patch", "32", "--workers", "0", *TINY]


def harvard_folder(folder, names=("img1", "img2", "imgb0"), size=96):
    """Harvard's layout: <scene>.mat holding `ref` (H x W x 31, values far below 1) and a mask `lbl`."""
    folder.mkdir()
    for seed, name in enumerate(names):
        cube = synthetic_scene(size, seed=seed).numpy().transpose(1, 2, 0) * 0.02
        savemat(folder / f"{name}.mat", {"ref": cube.astype(np.float64), "lbl": np.ones(cube.shape[:2], np.uint8)})
    return folder


def train_and_test(data, tmp_path, train_scenes, test_scenes, extra=()):
    run, results = tmp_path / "run", tmp_path / "results"
    assert main(["train", "--data", str(data), "--out", str(run), "--train-scenes", *train_scenes, *TINY_TRAINING,
                 *extra]) == 0
    assert main(["test", "--data", str(data), "--checkpoint", str(run / "last.pt"), "--out", str(results),
                 "--scenes", *test_scenes, "--save-cubes", "npy", "--border", "4", *TINY[-2:], *extra]) == 0
    return torch.load(run / "last.pt", weights_only=True), results


@pytest.mark.slow
def test_train_and_test_on_harvard_layout_files(tmp_path, capsys):
    data = harvard_folder(tmp_path / "harvard")
    checkpoint, results = train_and_test(data, tmp_path, ["img1", "img2"], ["imgb0"])
    config = checkpoint["config"]
    assert (config["data"], config["scaling"], config["train_scenes"], config["sigma"]) == \
        (str(data), "peak", ["img1", "img2"], 2.0)
    protocol = json.loads((results / "protocol.json").read_text())
    assert protocol["scenes"] == ["imgb0"] and protocol["border"] == 4 and protocol["srf"] == "nikon_d700"
    # Cubes come back in the file's units: about 0.02 at most, not [0, 1].
    cube = np.load(results / "cubes" / "imgb0.npy")
    assert cube.shape == (31, 96, 96) and 0.01 < cube.max() < 0.04
    rows = json.loads((results / "metrics.json").read_text())
    assert {r["method"] for r in rows} == {"dhif", "bicubic", "cs"} and all(np.isfinite(r["psnr"]) for r in rows)


@pytest.mark.slow
def test_train_and_test_on_a_folder_of_real_cubes(tmp_path, cave_dir):
    data = tmp_path / "real"
    data.mkdir()
    for name in ("balloons", "flowers"):  # CAVE scene folders, linked, and one scene as an (H, W, C) .npy file
        (data / f"{name}_ms").symlink_to(cave_dir / f"{name}_ms")
    np.save(data / "cd.npy", read_cave_scene(cave_dir / "cd_ms").numpy().transpose(1, 2, 0)[:256, :256] * 4000)
    checkpoint, results = train_and_test(data, tmp_path, ["balloons", "cd"], ["flowers", "cd"])
    assert checkpoint["config"]["train_scenes"] == ["balloons", "cd"]
    cube = np.load(results / "cubes" / "cd.npy")
    assert cube.shape == (31, 256, 256) and cube.max() > 1000  # the file's units
    assert (results / "figures" / "flowers_composite.png").exists()


def test_scenes_are_folders_and_cube_files_named_by_stem(tmp_path):
    harvard_folder(tmp_path / "mixed", names=("a",), size=32)
    (tmp_path / "mixed" / "b_ms").mkdir()
    (tmp_path / "mixed" / "notes.txt").write_text("not a scene")
    np.save(tmp_path / "mixed" / "c.npy", np.ones((4, 32, 32), np.float32))
    assert list(find_scenes(tmp_path / "mixed")) == ["a", "b", "c"]
    np.save(tmp_path / "mixed" / "a.npy", np.ones((4, 32, 32), np.float32))
    with pytest.raises(ValueError, match="two scenes named 'a'"):
        find_scenes(tmp_path / "mixed")


def test_npy_scenes_are_memory_mapped_and_scaled_by_their_peak(tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    cube = np.random.default_rng(0).random((40, 48, 6)).astype(np.float32) * 1000  # (H, W, C) on disk
    np.save(folder / "big.npy", cube)
    scenes = load_scenes(folder)
    mapped = scenes.cubes["big"]
    assert isinstance(mapped, MappedCube) and mapped.shape == (6, 40, 48)
    expected = cube.transpose(2, 0, 1)[:, 3:9, 5:7] / scenes.factors["big"]
    np.testing.assert_allclose(mapped[:, 3:9, 5:7].numpy(), expected, rtol=1e-6)
    assert 990 < scenes.factors["big"] < 1000


@pytest.mark.parametrize("argv, message", [
    (["--train-scenes", "img9"], "no scene 'img9' under"),
    (["--srf", "nikon_d700", "--train-scenes", "five"], "has 31 bands and the data 5; give one for your sensor"),
])
def test_dataset_mistakes_are_one_line_before_any_work(tmp_path, capsys, argv, message):
    data = harvard_folder(tmp_path / "harvard", names=("img1",), size=32)
    savemat(data / "five.mat", {"ref": np.ones((32, 32, 5)) * np.arange(5)})
    assert main(["train", "--data", str(data), "--out", str(tmp_path / "run"), *argv, *TINY]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "run").exists()


def every_format_folder(folder, size=64) -> dict:
    """One scene per file type, each in the layout that type usually has; no keys needed."""
    import h5py
    import tifffile

    folder.mkdir()
    cubes = [synthetic_scene(size, seed=seed).numpy() * (10 ** seed) for seed in range(6)]  # (C, H, W), any units
    savemat(folder / "v5.mat", {"ref": cubes[0].transpose(1, 2, 0), "lbl": np.ones((size, size))})
    with h5py.File(folder / "v73.mat", "w", userblock_size=512) as f:  # MATLAB v7.3: transposed HDF5
        f["hsi"] = cubes[1].transpose(1, 2, 0).T
    with open(folder / "v73.mat", "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    np.savez(folder / "npz.npz", cube=cubes[2])
    with h5py.File(folder / "h5.h5", "w") as f:
        f["data/cube"] = cubes[3]
    tifffile.imwrite(folder / "tif.tif", cubes[4])
    np.save(folder / "npy.npy", cubes[5].transpose(1, 2, 0))
    return dict(zip(["v5", "v73", "npz", "h5", "tif", "npy"], cubes))


@pytest.mark.slow
def test_train_and_test_on_every_file_type(tmp_path):
    scenes = every_format_folder(tmp_path / "formats")
    checkpoint, results = train_and_test(tmp_path / "formats", tmp_path, list(scenes), list(scenes))
    assert checkpoint["config"]["train_scenes"] == list(scenes)
    factors = json.loads((results / "protocol.json").read_text())["factors"]
    for name, cube in scenes.items():  # each scene's peak found, and its result written back in its units
        assert factors[name] == pytest.approx(np.quantile(np.abs(cube), 0.999), rel=1e-6)
        # A model trained for two steps is rough, but in each scene's units (they are 10x apart).
        assert 1 / 3 < np.load(results / "cubes" / f"{name}.npy").max() / cube.max() < 3
