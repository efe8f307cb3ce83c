"""Readers, the authors' degradation, spectral responses and datasets."""
import numpy as np
import pytest
import torch

from dhif.data import (CAVE_TEST_SCENES, CAVE_TRAIN_SCENES, PatchDataset, SceneDataset, degrade, find_scenes,
                       gaussian_psf, load_cube, read_cave_scene, read_cube, spectral_response, to_msi)
from dhif.data.synthetic import synthetic_scene

from helpers import DEVICES

PIL = pytest.importorskip("PIL.Image")


def write_cave_folder(root, name="toy", bands=31, size=(8, 12), seed=0, eight_bit=False):
    """A scene in the CAVE database's own layout, with the non-band files it ships."""
    folder = root / f"{name}_ms" / f"{name}_ms"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    cube = rng.integers(0, 255 if eight_bit else 65535, size=(bands, *size))
    for b in range(bands):
        if eight_bit:
            plane = np.repeat(cube[b].astype(np.uint8)[..., None], 4, axis=-1)
            plane[..., 3] = 255
            PIL.fromarray(plane, mode="RGBA").save(folder / f"{name}_ms_{b + 1:02d}.png")
        else:
            PIL.fromarray(cube[b].astype(np.uint16)).save(folder / f"{name}_ms_{b + 1:02d}.png")
    PIL.fromarray(np.zeros((*size, 3), dtype=np.uint8)).save(folder / f"{name}_RGB.bmp")
    (folder / "Thumbs.db").write_bytes(b"\x00" * 16)
    return folder.parent, cube / (255.0 if eight_bit else 65535.0)


# ----------------------------------------------------------------------------- readers


@pytest.mark.parametrize("eight_bit", [False, True])
def test_cave_layout_is_read_in_band_order(tmp_path, eight_bit):
    scene, expected = write_cave_folder(tmp_path, eight_bit=eight_bit)
    for path in (scene, scene / scene.name):  # either nesting level
        cube = read_cave_scene(path)
        assert cube.shape == (31, 8, 12) and cube.dtype == torch.float32
        np.testing.assert_allclose(cube.numpy(), expected, rtol=0, atol=1e-7)


def test_cave_errors_name_the_problem(tmp_path):
    scene, _ = write_cave_folder(tmp_path)
    band = scene / scene.name / "toy_ms_07.png"
    band.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="toy_ms_07.png"):
        read_cave_scene(scene)
    band.unlink()
    with pytest.raises(ValueError, match=r"missing \[7\]"):
        read_cave_scene(scene)
    PIL.fromarray(np.zeros((9, 12), dtype=np.uint16)).save(band)
    with pytest.raises(ValueError, match="toy_ms_07.png"):
        read_cave_scene(scene)
    with pytest.raises(FileNotFoundError):
        read_cave_scene(tmp_path / "nowhere")


def test_real_cave_scenes(cave_dir):
    scenes = find_scenes(cave_dir)
    assert {"balloons", "watercolors"} <= set(scenes)
    for name in ("balloons", "watercolors"):  # 16-bit grey and 8-bit RGBA bands
        cube = read_cave_scene(scenes[name])
        assert cube.shape == (31, 512, 512)
        assert 0.0 <= cube.min() and cube.max() <= 1.0 and cube.mean() > 0.01
    assert set(scenes) <= set(CAVE_TRAIN_SCENES + CAVE_TEST_SCENES)
    assert len(CAVE_TRAIN_SCENES) == 20 and len(CAVE_TEST_SCENES) == 12


def test_cube_formats_round_trip(tmp_path):
    scipy_io = pytest.importorskip("scipy.io")
    h5py = pytest.importorskip("h5py")
    tifffile = pytest.importorskip("tifffile")
    cube = np.random.default_rng(0).random((5, 6, 7)).astype(np.float32)  # (C, H, W)
    hwc = cube.transpose(1, 2, 0)
    np.save(tmp_path / "a.npy", cube)
    np.savez(tmp_path / "a.npz", hsi=cube, other=np.zeros(2))
    scipy_io.savemat(tmp_path / "v5.mat", {"hsi": hwc, "rgb": hwc[..., :3]})
    tifffile.imwrite(tmp_path / "a.tif", cube)
    # MATLAB v7.3 is HDF5 behind a 512-byte header; arrays are stored transposed.
    with h5py.File(tmp_path / "v73.mat", "w", userblock_size=512) as f:
        f["hsi"] = hwc.T
    with open(tmp_path / "v73.mat", "r+b") as f:
        f.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64".ljust(116, b" ") + b"\x00" * 8 + b"\x00\x02IM")
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data/hsi"] = cube
    for name, key in [("a.npy", None), ("a.npz", "hsi"), ("a.npz", None), ("v5.mat", "hsi"), ("v73.mat", "hsi"),
                      ("v73.mat", None), ("a.tif", None), ("a.h5", "data/hsi"), ("a.h5", None)]:
        layout = "hwc" if name.endswith(".mat") else "chw"
        np.testing.assert_array_equal(read_cube(tmp_path / name, key, layout).numpy(), cube, err_msg=name)
    with pytest.raises(KeyError, match="nothing"):
        read_cube(tmp_path / "v5.mat", "nothing")
    (tmp_path / "broken.mat").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="broken.mat"):
        read_cube(tmp_path / "broken.mat")


def test_containers_with_several_cubes_and_no_key_are_refused_with_the_list(tmp_path):
    h5py = pytest.importorskip("h5py")
    cube = np.zeros((4, 6, 6), dtype=np.float32)
    np.savez(tmp_path / "two.npz", hsi=cube, msi=cube[:3], bands=np.arange(4))
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["hsi"], f["msi"] = cube, cube[:3]
    for name in ("two.npz", "two.h5"):
        with pytest.raises(ValueError, match=r"holds several arrays \(.*hsi \(4, 6, 6\).*msi \(3, 6, 6\).*\); "
                                             "name the one to read"):
            read_cube(tmp_path / name)
        assert read_cube(tmp_path / name, "msi", "chw").shape == (3, 6, 6)


def test_layout_is_stated_or_unambiguous(tmp_path):
    rng = np.random.default_rng(0)
    ambiguous = rng.random((20, 100, 50)).astype(np.float32)  # 20 rows and 50 bands, or 20 bands?
    np.save(tmp_path / "ambiguous.npy", ambiguous)
    with pytest.raises(ValueError, match="cannot tell which axis"):
        read_cube(tmp_path / "ambiguous.npy")
    assert read_cube(tmp_path / "ambiguous.npy", layout="hwc").shape == (50, 20, 100)
    assert read_cube(tmp_path / "ambiguous.npy", layout="chw").shape == (20, 100, 50)
    with pytest.raises(ValueError, match="unknown layout 'whc'"):
        read_cube(tmp_path / "ambiguous.npy", layout="whc")
    np.save(tmp_path / "clear.npy", rng.random((64, 80, 8)).astype(np.float32))
    assert read_cube(tmp_path / "clear.npy").shape == (8, 64, 80)


def test_array_name_is_refused_for_single_array_files(tmp_path):
    np.save(tmp_path / "a.npy", np.zeros((3, 8, 8), dtype=np.float32))
    with pytest.raises(ValueError, match="single array"):
        read_cube(tmp_path / "a.npy", "hyprImg")


def _replace_band(scene, number, array, mode=None):
    path = scene / scene.name / f"toy_ms_{number:02d}.png"
    image = PIL.fromarray(array, mode=mode) if mode else PIL.fromarray(array)
    image.save(path)
    return path


def test_band_images_of_one_scene_share_a_bit_depth(tmp_path):
    scene, _ = write_cave_folder(tmp_path)
    _replace_band(scene, 3, np.full((8, 12), 200, dtype=np.uint8))
    with pytest.raises(ValueError, match="bit depth"):
        read_cave_scene(scene)


def test_colour_band_images_must_be_grey(tmp_path):
    scene, _ = write_cave_folder(tmp_path, eight_bit=True)
    colour = np.zeros((8, 12, 3), dtype=np.uint8)
    colour[..., 0] = 10
    _replace_band(scene, 5, colour)
    with pytest.raises(ValueError, match="red, green and blue differ"):
        read_cave_scene(scene)


def test_palette_band_images_are_refused(tmp_path):
    scene, _ = write_cave_folder(tmp_path, eight_bit=True)
    palette = PIL.fromarray(np.zeros((8, 12), dtype=np.uint8), mode="L").convert("P")
    palette.save(scene / scene.name / "toy_ms_02.png")
    with pytest.raises(ValueError, match="palette"):
        read_cave_scene(scene)


def test_band_numbered_zero_is_named(tmp_path):
    scene, _ = write_cave_folder(tmp_path)
    _replace_band(scene, 0, np.zeros((8, 12), dtype=np.uint16))
    with pytest.raises(ValueError, match=r"unexpected \[0\]"):
        read_cave_scene(scene)


def test_misspelled_scene_is_named_with_the_valid_ones(tmp_path):
    write_cave_folder(tmp_path)
    assert find_scenes(tmp_path, ["ballons"]) == {}  # the defaults: absent scenes are skipped
    with pytest.raises(ValueError, match=r"no scene 'ballons' under .*; scenes there: toy"):
        find_scenes(tmp_path, ["ballons"], require_all=True)


def test_integer_cubes_keep_their_values(tmp_path):
    np.save(tmp_path / "u16.npy", np.arange(48, dtype=np.uint16).reshape(4, 4, 3) * 1000)
    cube = load_cube(tmp_path / "u16.npy")
    assert cube.layout == "hwc" and cube.dtype == "uint16" and "not divided" in cube.values_read()
    assert cube.data.dtype == torch.float32 and cube.data.max() == 47000


def test_wavelengths_are_read_where_the_file_has_them(tmp_path):
    cube = np.ones((20, 20, 5), np.float32)
    np.savez(tmp_path / "nm.npz", cube=cube, wavelength=np.arange(5) * 10 + 450.0)
    np.savez(tmp_path / "um.npz", cube=cube, wl=np.array([0.45, 0.46, 0.47, 0.48, 0.49]))
    np.savez(tmp_path / "wrong_length.npz", cube=cube, wavelength=np.arange(4.0))
    np.testing.assert_allclose(load_cube(tmp_path / "nm.npz", "cube").wavelengths, [450, 460, 470, 480, 490])
    np.testing.assert_allclose(load_cube(tmp_path / "um.npz", "cube").wavelengths, [450, 460, 470, 480, 490])
    assert load_cube(tmp_path / "wrong_length.npz", "cube").wavelengths is None


@pytest.mark.parametrize("shape", [(16, 16), (2, 4, 16, 16)])
def test_arrays_that_are_not_cubes_are_refused(tmp_path, shape):
    np.save(tmp_path / "a.npy", np.ones(shape, np.float32))
    with pytest.raises(ValueError, match=f"{len(shape)}-D array of shape"):
        read_cube(tmp_path / "a.npy")


def test_real_pairs_are_readable(shared_data):
    houston = shared_data("houston/houston_dataset.mat")
    paris = shared_data("paris/paris_data_hs_ms.mat")
    assert read_cube(houston, "hyprImg").shape == (48, 128, 128)
    assert read_cube(houston, "rgbImg").shape == (3, 512, 512)
    assert read_cube(paris, "HSim").shape == (128, 72, 72)
    assert read_cube(paris, "MSim").shape == (9, 72, 72)


# ----------------------------------------------------------------------------- degradation


def circular_blur_numpy(cube, scale, sigma):
    """sum_{j,k} psf[j, k] z[n - j + scale//2, m - k + scale//2], by np.roll: psf2otf's centring."""
    psf = gaussian_psf(scale, sigma).numpy()
    out = np.zeros_like(cube)
    for j in range(scale):
        for k in range(scale):
            out += psf[j, k] * np.roll(cube, (j - scale // 2, k - scale // 2), axis=(-2, -1))
    return out


@pytest.mark.parametrize("scale, start", [(3, 1), (4, 1), (5, 2), (8, 3), (16, 7)])
def test_degrade_matches_direct_circular_convolution(scale, start):
    """The authors keep pixels from scale // 2 - 1 (3 at x8); at odd scales the centre of the
    blur window, so that an LR pixel lies over the middle of its block."""
    cube = torch.rand(3, 2 * scale * 3, 2 * scale * 5, dtype=torch.float64)
    expected = circular_blur_numpy(cube.numpy(), scale, 2.0)[..., start::scale, start::scale]
    np.testing.assert_allclose(degrade(cube, scale).numpy(), expected, atol=1e-12)


def test_degrade_properties():
    flat = torch.full((2, 3, 32, 32), 0.37)
    torch.testing.assert_close(degrade(flat, 8), torch.full((2, 3, 4, 4), 0.37))
    cube = torch.rand(2, 4, 32, 40)
    torch.testing.assert_close(degrade(cube, 8)[1], degrade(cube[1], 8))
    delta = torch.zeros(1, 32, 32, dtype=torch.float64)
    delta[0, 11, 19] = 1.0  # pixel 11 is sampled as LR 1 (8 * 1 + 3); 19 as LR 2
    lr = degrade(delta, 8)
    assert lr.shape == (1, 4, 4)
    assert divmod(int(lr.argmax()), 4) == (1, 2)
    with pytest.raises(ValueError, match="divisible"):
        degrade(torch.rand(3, 30, 32), 8)


def test_degrade_noise_has_the_requested_snr():
    cube = torch.rand(8, 128, 128, dtype=torch.float64)
    clean = degrade(cube, 4)
    noisy = degrade(cube, 4, snr_db=30, generator=torch.Generator().manual_seed(0))
    snr = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    assert abs(snr.item() - 30) < 0.3


@pytest.mark.parametrize("device", DEVICES)
def test_degrade_on_every_device(device):
    """float32 on each device against the direct convolution in float64 (numpy, no torch)."""
    cube = torch.rand(2, 5, 32, 32)
    expected = circular_blur_numpy(cube.double().numpy(), 8, 2.0)[..., 3::8, 3::8]
    result = degrade(cube.to(device), 8)
    assert result.device.type == device
    np.testing.assert_allclose(result.cpu().double().numpy(), expected, atol=1e-6)


# ----------------------------------------------------------------------------- spectral response


def test_nikon_response_matches_the_published_table():
    srf = spectral_response("nikon_d700")
    assert srf.shape == (3, 31)
    torch.testing.assert_close(srf.sum(dim=1), torch.ones(3))


def test_nikon_response_is_the_shared_table(shared_data):
    from scipy.io import loadmat

    table = loadmat(shared_data("srf/nikon_d700_response_coefficient.mat"))["R"].T
    np.testing.assert_allclose(spectral_response("nikon_d700").numpy(), table, atol=1e-7)


def test_user_response_files(tmp_path):
    table = np.random.default_rng(0).random((31, 3))
    np.save(tmp_path / "r.npy", table)
    wavelengths = np.arange(400, 710, 10)[:, None]
    np.savetxt(tmp_path / "r.csv", np.hstack([wavelengths, table]), delimiter=",", header="nm,r,g,b")
    for name in ("r.npy", "r.csv"):
        srf = spectral_response(tmp_path / name, bands=31)
        np.testing.assert_allclose(srf.numpy(), (table / table.sum(axis=0)).T, rtol=1e-5)
    with pytest.raises(ValueError, match="bands"):
        spectral_response(tmp_path / "r.npy", bands=30)
    with pytest.raises(ValueError, match="unknown spectral response"):
        spectral_response("canon_5d")


def test_a_camspec_response_file(shared_data):
    assert spectral_response(shared_data("srf/nikon_d700_camspec.csv")).shape == (3, 33)  # 400-720 nm


def test_to_msi():
    srf = spectral_response()
    cube = torch.rand(2, 31, 4, 5)
    msi = to_msi(cube, srf)
    assert msi.shape == (2, 3, 4, 5)
    torch.testing.assert_close(msi[1, :, 2, 3], srf @ cube[1, :, 2, 3])


# ----------------------------------------------------------------------------- datasets


def test_patch_dataset_is_a_function_of_seed_epoch_index():
    scenes = [synthetic_scene(64, seed=0), synthetic_scene(64, seed=1)]
    data = PatchDataset(scenes, 8, spectral_response(), patch=32, samples=10, seed=3)
    lr, msi, hr = data[4]
    assert lr.shape == (31, 4, 4) and msi.shape == (3, 32, 32) and hr.shape == (31, 32, 32)
    torch.testing.assert_close(data[4][2], hr)
    assert not torch.equal(data[5][2], hr)
    data.set_epoch(1)
    assert not torch.equal(data[4][2], hr)
    torch.testing.assert_close(to_msi(hr, spectral_response()), msi)
    torch.testing.assert_close(degrade(hr, 8), lr)


@pytest.mark.parametrize("augment", [False, True])
def test_patches_with_a_start_are_cut_from_the_whole_simulated_scene(augment):
    from dhif.baselines import Observation, component_substitution

    scene, srf = synthetic_scene(64, seed=0), spectral_response()
    made = []

    def start(lr, msi):
        made.append(lr.shape)
        return component_substitution(lr, msi, Observation(8, 2.0))

    data = PatchDataset([scene], 8, srf, patch=32, samples=12, seed=3, augment=augment, start=start)
    assert made == [(1, 31, 8, 8)]  # once, on the whole scene
    whole = [degrade(scene, 8), to_msi(scene, srf), scene, start(degrade(scene, 8)[None], to_msi(scene, srf)[None])[0]]
    views = [(turns, flip) for turns in range(4) for flip in (False, True)] if augment else [(0, False)]
    for sample in (data[i] for i in range(len(data))):
        assert [t.shape[1:] for t in sample] == [(4, 4), (32, 32), (32, 32), (32, 32)]
        found = []
        for top in range(0, 33, 8):
            for left in range(0, 33, 8):
                cut = [whole[0][:, top // 8:top // 8 + 4, left // 8:left // 8 + 4],
                       *(t[:, top:top + 32, left:left + 32] for t in whole[1:])]
                for turns, flip in views:
                    seen = [torch.rot90(t, turns, dims=(1, 2)).flip(2) if flip else torch.rot90(t, turns, dims=(1, 2))
                            for t in cut]
                    if all(torch.equal(a, b) for a, b in zip(sample, seen)):
                        found.append((top, left))
        assert found, "a sample that is not an aligned cut of the whole scene's"
    with pytest.raises(ValueError, match="no-data"):
        PatchDataset({"a": scene}, 8, srf, patch=32, valid={"a": torch.ones(64, 64, dtype=torch.bool)}, start=start)


def test_persistent_workers_see_every_epoch():
    """DataLoader's persistent workers hold copies of the dataset: set_epoch must reach them,
    or every epoch would repeat the patches of the epoch the workers started in."""
    from torch.utils.data import DataLoader

    data = PatchDataset([synthetic_scene(64, seed=0)], 8, spectral_response(), patch=32, samples=4, seed=3)
    loader = DataLoader(data, batch_size=4, num_workers=1, persistent_workers=True)
    for epoch in range(2):
        data.set_epoch(epoch)
        _, _, hr = next(iter(loader))
        torch.testing.assert_close(hr, torch.stack([data[i][2] for i in range(4)]), rtol=0, atol=0)
    data.set_epoch(0)
    assert not torch.equal(hr, torch.stack([data[i][2] for i in range(4)]))


def test_scene_dataset_crops_to_the_scale():
    data = SceneDataset({"a": synthetic_scene(100, seed=0)}, 8, spectral_response())
    lr, msi, hr, name = data[0]
    assert name == "a" and hr.shape == (31, 96, 96) and lr.shape == (31, 12, 12) and msi.shape == (3, 96, 96)


def test_synthetic_scene():
    cube = synthetic_scene(64, bands=10, seed=5)
    assert cube.shape == (10, 64, 64) and 0 <= cube.min() and cube.max() <= 1
    torch.testing.assert_close(cube, synthetic_scene(64, bands=10, seed=5))


def test_a_psf_wider_than_the_image_blurs_it_as_circular_convolution_does():
    """A training patch smaller than a wide PSF: the same as blurring the image repeated."""
    from dhif.data import blur
    image = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    tiled = blur(image.repeat(1, 5, 5), 4, 3.0, window=25)[:, 16:24, 16:24]
    assert torch.allclose(blur(image, 4, 3.0, window=25), tiled, atol=1e-12)
