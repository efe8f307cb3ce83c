"""ENVI and GeoTIFF rasters: read as sensors ship them (the ENVI files here are written by
hand, header text and raw bytes, in each interleave), georeference checked and kept,
no-data pixels left out, and `dhif fuse` writing rasters a GIS lays over the HR-MSI."""
import json

import numpy as np
import pytest
import torch

from dhif.cli import main
from dhif.data import PairPatchDataset, degrade, find_scenes, load_cube, spectral_response, to_msi
from dhif.data.nodata import pair_valid
from dhif.data.rasters import Georeference, check_registration
from dhif.data.synthetic import synthetic_scene
from dhif.data.units import robust_peak


rasterio = pytest.importorskip("rasterio")
from rasterio.transform import Affine  # noqa: E402

ENVI_TYPES = {"uint8": 1, "int16": 2, "int32": 3, "float32": 4, "float64": 5, "uint16": 12}
AXES = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}  # (C, H, W) -> the file's order
ORIGIN = (400000.0, 5000000.0)  # UTM zone 33 N
NODATA = -9999


def write_envi(stem, cube: np.ndarray, interleave="bsq", wavelengths=None, units=None, nodata=None, pixel=None,
               data_suffix=".img", extra=()):
    """An ENVI raster as a sensor's software writes one: raw bytes and a text header."""
    bands, lines, samples = cube.shape
    data = stem.with_name(stem.name + data_suffix)
    np.ascontiguousarray(cube.transpose(AXES[interleave])).tofile(data)
    header = ["ENVI", f"samples = {samples}", f"lines = {lines}", f"bands = {bands}", "header offset = 0",
              "file type = ENVI Standard", f"data type = {ENVI_TYPES[cube.dtype.name]}",
              f"interleave = {interleave}", "byte order = 0", *extra]
    if wavelengths is not None:
        header.append("wavelength = {" + ", ".join(f"{w:g}" for w in wavelengths) + "}")
    if units:
        header.append(f"wavelength units = {units}")
    if nodata is not None:
        header.append(f"data ignore value = {nodata}")
    if pixel:
        header.append(f"map info = {{UTM, 1, 1, {ORIGIN[0]}, {ORIGIN[1]}, {pixel}, {pixel}, 33, North, WGS-84}}")
    stem.with_suffix(".hdr").write_text("\n".join(header) + "\n")
    return data


def north_up(pixel, origin=ORIGIN):
    return Affine(pixel, 0, origin[0], 0, -pixel, origin[1])


def write_geotiff(path, cube: np.ndarray, pixel=None, crs="EPSG:32633", nodata=None, origin=ORIGIN):
    profile = dict(driver="GTiff", count=cube.shape[0], height=cube.shape[1], width=cube.shape[2],
                   dtype=cube.dtype.name, nodata=nodata)
    if pixel:
        profile.update(crs=crs, transform=north_up(pixel, origin))
    with rasterio.Env(GDAL_PAM_ENABLED="NO"), rasterio.open(path, "w", **profile) as dataset:
        dataset.write(cube)
    return path


def cube(bands=5, height=12, width=9, seed=0):
    return (np.random.default_rng(seed).random((bands, height, width)) * 1000).astype(np.int16)


@pytest.mark.parametrize("interleave", ["bsq", "bil", "bip"])
def test_envi_reads_every_interleave_with_its_wavelengths_in_nm(tmp_path, interleave):
    stored = cube()
    write_envi(tmp_path / "scene", stored, interleave, wavelengths=[0.45, 0.5, 0.55, 0.6, 0.65], units="Micrometers")
    for given in ("scene.hdr", "scene.img"):  # the header or the data file
        read = load_cube(tmp_path / given)
        assert read.format == "envi" and read.layout == "chw" and read.dtype == "int16"
        assert torch.equal(read.data, torch.from_numpy(stored.astype(np.float32)))
        np.testing.assert_allclose(read.wavelengths, [450, 500, 550, 600, 650])
        assert read.georeference is None and read.valid is None


def test_envi_no_data_pixels_are_filled_masked_and_left_out_of_the_scale(tmp_path):
    stored = cube(height=40, width=40)
    stored[:, :10, :] = NODATA
    write_envi(tmp_path / "scene", stored, "bil", nodata=NODATA)
    read = load_cube(tmp_path / "scene.hdr")
    assert read.nodata == NODATA and read.describe()["pixels_without_data"] == 400
    assert not read.valid[:10].any() and read.valid[10:].all()
    assert float(read.data.min()) >= 0  # filled with the band means of the pixels with data
    assert robust_peak(read.valid_values()) == pytest.approx(robust_peak(stored[:, 10:].astype(np.float64)))


def test_envi_units_and_scale_factor_are_recorded(tmp_path):
    write_envi(tmp_path / "scene", cube(), extra=("data units = reflectance", "reflectance scale factor = 10000"))
    read = load_cube(tmp_path / "scene.hdr")
    assert (read.units, read.scale_factor) == ("reflectance", 10000.0)


@pytest.mark.parametrize("problem, expected", [
    ("no data file", "has no data file beside it"),
    ("no header", "has no ENVI header beside it"),
    ("short file", "the header's data type, sizes or interleave are wrong"),
    ("mislabelled type", "the header's data type, sizes or interleave are wrong"),
    ("all no-data", "covers the whole image"),
])
def test_bad_envi_files_are_one_line(tmp_path, problem, expected):
    stored = cube()
    data = write_envi(tmp_path / "scene", stored, nodata=NODATA)
    path = tmp_path / "scene.hdr"
    if problem == "no data file":
        data.unlink()
    elif problem == "no header":
        path.unlink()
        path = data
    elif problem == "short file":
        data.write_bytes(data.read_bytes()[:-10])
    elif problem == "mislabelled type":  # int16 bytes read as float32: twice the bytes the file holds
        path.write_text(path.read_text().replace("data type = 2", "data type = 4"))
    else:
        write_envi(tmp_path / "scene", np.full_like(stored, NODATA), nodata=NODATA)
    with pytest.raises((ValueError, FileNotFoundError), match=expected):
        load_cube(path)


@pytest.mark.parametrize("units, ok", [("Nanometers", True), ("nm", True), ("Micrometers", True),
                                       ("Index", False), ("Unknown", False), ("GHz", False)])
def test_wavelength_units_that_are_not_lengths_need_wavelengths_given(tmp_path, units, ok):
    from dhif.fuse import band_wavelengths

    write_envi(tmp_path / "scene", cube(), wavelengths=[450, 500, 550, 600, 650] if units[0] != "M" else
               [0.45, 0.5, 0.55, 0.6, 0.65], units=units)
    read = load_cube(tmp_path / "scene.hdr")
    if ok:
        np.testing.assert_allclose(band_wavelengths(None, read), [450, 500, 550, 600, 650])
    else:
        with pytest.raises(ValueError, match=f"units \\({units}\\).*--wavelengths"):
            band_wavelengths(None, read)
        np.testing.assert_allclose(band_wavelengths("400:800", read), [400, 500, 600, 700, 800])


def test_geotiff_reads_its_crs_transform_and_no_data(tmp_path):
    stored = cube(height=16, width=16)
    stored[:, 0, 0] = NODATA
    read = load_cube(write_geotiff(tmp_path / "a.tif", stored, pixel=10.0, nodata=NODATA))
    assert read.format == "tif" and torch.equal(read.data[:, 1:], torch.from_numpy(stored[:, 1:].astype(np.float32)))
    assert read.georeference.transform == (10.0, 0.0, ORIGIN[0], 0.0, -10.0, ORIGIN[1])
    assert rasterio.crs.CRS.from_wkt(read.georeference.crs).to_epsg() == 32633
    assert int((~read.valid).sum()) == 1 and not read.valid[0, 0]


def test_an_erdas_imagine_img_without_a_header_is_read_by_gdal(tmp_path):
    stored = cube(height=16, width=16)
    profile = dict(driver="HFA", count=5, height=16, width=16, dtype="int16", crs="EPSG:32633",
                   transform=north_up(30.0))
    with rasterio.open(tmp_path / "scene.img", "w", **profile) as dataset:
        dataset.write(stored)
    read = load_cube(tmp_path / "scene.img")
    assert torch.equal(read.data, torch.from_numpy(stored.astype(np.float32)))
    assert read.georeference.pixel_size() == (30.0, 30.0)


def test_a_tiff_stack_of_pages_is_still_read_as_an_array(tmp_path):
    tifffile = pytest.importorskip("tifffile")
    stored = np.random.default_rng(0).random((20, 20, 31)).astype(np.float32)
    tifffile.imwrite(tmp_path / "stack.tif", stored)
    read = load_cube(tmp_path / "stack.tif")
    assert read.format is None and read.layout == "hwc" and read.data.shape == (31, 20, 20)


def test_an_envi_scene_in_a_dataset_folder_is_one_scene(tmp_path):
    write_envi(tmp_path / "field", cube(), data_suffix=".dat")
    write_envi(tmp_path / "orchard", cube())
    (tmp_path / "orchard.hdr").rename(tmp_path / "orchard.img.hdr")  # the other way to name a header
    np.save(tmp_path / "lab.npy", cube().astype(np.float32))
    found = find_scenes(tmp_path)
    assert sorted(found) == ["field", "lab", "orchard"]
    assert load_cube(found["orchard"]).data.shape == (5, 12, 9)


def _georeference(pixel, origin=ORIGIN, crs="EPSG:32633"):
    return Georeference(rasterio.crs.CRS.from_string(crs).to_wkt(), tuple(north_up(pixel, origin))[:6])


@pytest.mark.parametrize("msi, expected", [
    (_georeference(10.0), None),
    (_georeference(10.0, crs="EPSG:32632"), "in EPSG:32633 and the HR-MSI in EPSG:32632; reproject"),
    (_georeference(15.0), "x2, not the pair's scale x3"),
    (_georeference(10.0, origin=(ORIGIN[0] + 1e5, ORIGIN[1])), "do not overlap"),
    (_georeference(10.0, origin=(ORIGIN[0] + 90, ORIGIN[1])), "3 LR pixels apart"),
])
def test_registration_of_a_pair_is_checked(msi, expected):
    lr = _georeference(30.0)
    if expected is None:
        check_registration(lr, (20, 20), msi, (60, 60), 3)
    else:
        with pytest.raises(ValueError, match=expected):
            check_registration(lr, (20, 20), msi, (60, 60), 3)


def test_pair_masks_spread_no_data_across_resolutions():
    lr_valid = torch.ones(4, 4, dtype=torch.bool)
    lr_valid[0, 0] = False
    msi_valid = torch.ones(8, 8, dtype=torch.bool)
    msi_valid[7, 7] = False
    low, high = pair_valid(lr_valid, msi_valid, 2, (4, 4), (8, 8))
    assert (~low).nonzero().tolist() == [[0, 0], [3, 3]]
    assert (~high).nonzero().tolist() == [[0, 0], [0, 1], [1, 0], [1, 1], [7, 7]]
    assert pair_valid(None, None, 2, (4, 4), (8, 8)) == (None, None)


def test_training_patches_avoid_pixels_without_data():
    target = torch.rand(2, 32, 32)
    valid = torch.ones(32, 32, dtype=torch.bool)
    valid[:, :20] = False
    target[:, ~valid] = float("nan")
    data = PairPatchDataset(degrade(target.nan_to_num(), 2), torch.rand(1, 64, 64), target, 2, 8, 50, valid=valid)
    assert all(not torch.isnan(data[i][2]).any() for i in range(len(data)))
    with pytest.raises(ValueError, match="no 16 x 16 patch of the LR-HSI is free of no-data"):
        PairPatchDataset(target, torch.rand(1, 64, 64), target, 2, 16, 50, valid=valid)


@pytest.mark.parametrize("scale, window", [(4, 7), (4, None), (3, 5), (2, 3)])
def test_training_patches_of_a_pair_still_follow_its_observation(scale, window):
    from dhif.baselines import Observation

    observation = Observation(scale, 1.0, window=window)
    assert observation.mirror_symmetric == ((window or scale) % 2 == scale % 2)
    target = torch.nn.functional.interpolate(torch.rand(1, 2, 12, 12), size=(48, 48), mode="bicubic")[0]
    lr = observation.degrade(target[None])[0]

    def mismatch(dataset):
        """The largest |LR patch - degrade(target patch)| away from the patch's wrapped edge."""
        worst = 0.0
        for lr_patch, _, target_patch in (dataset[i] for i in range(len(dataset))):
            difference = lr_patch - observation.degrade(target_patch[None])[0]
            worst = max(worst, difference[:, 2:-2, 2:-2].abs().max().item())
        return worst

    patches = PairPatchDataset(lr, target, target, scale, 8 * scale, 24, mirror_symmetric=observation.mirror_symmetric)
    assert mismatch(patches) < 1e-5
    if not observation.mirror_symmetric:  # flips would have shifted the LR grid by an HR pixel
        assert mismatch(PairPatchDataset(lr, target, target, scale, 8 * scale, 24)) > 1e-3


def _sensor_pair(folder, scale):
    """An ENVI LR-HSI (BIL, int16 reflectance x 10000, wavelengths in um, a no-data corner,
    30 m pixels) and a GeoTIFF HR-MSI of the same area at 30 / scale m; large enough for
    training patches beside the corner (the patches at x3 and x6 are 48 pixels)."""
    hr = synthetic_scene((64 if scale % 3 else 96) * scale, 31, seed=1)
    lr = (degrade(hr, scale).numpy() * 10000).astype(np.int16)
    lr[:, :3, :4] = NODATA
    msi = (to_msi(hr, spectral_response("nikon_d700", 31)).numpy() * 10000).astype(np.int16)
    write_envi(folder / "lr", lr, "bil", wavelengths=np.linspace(0.4, 0.7, 31), units="Micrometers", nodata=NODATA,
               pixel=30, data_suffix=".bil", extra=("data units = reflectance", "reflectance scale factor = 10000"))
    write_geotiff(folder / "msi.tif", msi, pixel=30 / scale)
    return ["fuse", "--lr-hsi", str(folder / "lr.hdr"), "--hr-msi", str(folder / "msi.tif"), "--steps", "8",
            "--width", "4", "--stages", "1", "--head-width", "8", "--device", "cpu"]


@pytest.mark.parametrize("scale, cube_format, data_file", [(4, None, "fused.img"), (4, "tif", "fused.tif"),
                                                            (3, "tif", "fused.tif"), (3, "envi", "fused.img"),
                                                            (6, "tif", "fused.tif")])
def test_fuse_writes_a_raster_that_lies_over_the_hr_msi(tmp_path, scale, cube_format, data_file):
    argv = _sensor_pair(tmp_path, scale) + ["--out", str(tmp_path / "out")]
    assert main(argv + (["--format", cube_format] if cube_format else [])) == 0
    with rasterio.open(tmp_path / "msi.tif") as msi, rasterio.open(tmp_path / "out" / data_file) as fused:
        assert fused.transform == msi.transform and fused.crs == msi.crs and fused.shape == msi.shape
        assert fused.bounds == msi.bounds and fused.count == 31
        np.testing.assert_allclose([float(fused.tags(b)["wavelength"]) for b in (1, 31)], [400, 700])
        assert fused.tags(1)["wavelength_units"] == "Nanometers" and fused.nodata == NODATA
        values = fused.read()
    written = load_cube(tmp_path / "out" / data_file)
    assert (written.units, written.scale_factor) == ("reflectance", 10000.0)
    # The LR-HSI's no-data corner, 3 x 4 LR pixels, is no-data in the fused cube and nowhere else.
    missing = (values == NODATA).all(0)
    assert missing[:3 * scale, :4 * scale].all() and missing.sum() == 12 * scale * scale
    assert 0 <= values[:, ~missing].min() and values[:, ~missing].max() < 2 * 10000  # in the input's units
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["output"]["pixels_without_data"] == 12 * scale * scale
    assert report["inputs"]["lr_hsi"]["scale_factor"] == 10000.0


@pytest.mark.parametrize("change, expected", [
    ("crs", "reproject one onto the other's CRS"),
    ("pixel", "not the pair's scale x4"),
    ("far", "do not overlap"),
])
def test_fuse_refuses_a_misregistered_pair_before_writing_anything(tmp_path, capsys, change, expected):
    argv = _sensor_pair(tmp_path, 4)
    msi = load_cube(tmp_path / "msi.tif").data.numpy().astype(np.int16)
    write_geotiff(tmp_path / "msi.tif", msi, pixel=9.0 if change == "pixel" else 7.5,
                  crs="EPSG:32632" if change == "crs" else "EPSG:32633",
                  origin=(0.0, 0.0) if change == "far" else ORIGIN)
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_the_real_houston_pair_fuses_alike_from_envi_and_geotiff_and_from_its_mat_file(tmp_path, shared_data):
    """The shared Houston crop (48-band uint16 HSI, 8-bit RGB, x4) written as an ENVI BIP
    cube and a GeoTIFF: the same seed and steps give the same fused values as the .mat."""
    houston = shared_data("houston/houston_dataset.mat")
    lr_file, rgb_file = load_cube(houston, "hyprImg"), load_cube(houston, "rgbImg")
    write_envi(tmp_path / "hsi", lr_file.data.numpy().astype(np.uint16), "bip", wavelengths=np.linspace(380, 1050, 48),
               units="Nanometers", pixel=1.0)
    write_geotiff(tmp_path / "rgb.tif", rgb_file.data.numpy().astype(np.uint8), pixel=0.25)
    common = ["--steps", "8", "--width", "4", "--stages", "1", "--head-width", "8", "--device", "cpu"]
    assert main(["fuse", "--lr-hsi", str(houston), "--lr-key", "hyprImg", "--hr-msi", str(houston), "--msi-key",
                 "rgbImg", "--out", str(tmp_path / "from_mat"), *common]) == 0
    assert main(["fuse", "--lr-hsi", str(tmp_path / "hsi.hdr"), "--hr-msi", str(tmp_path / "rgb.tif"),
                 "--out", str(tmp_path / "from_rasters"), *common]) == 0
    from_mat = np.load(tmp_path / "from_mat" / "fused.npy")  # hwc, as hyprImg is stored
    with rasterio.open(tmp_path / "from_rasters" / "fused.img") as fused:
        assert fused.res == (0.25, 0.25) and fused.crs.to_epsg() == 32633
        np.testing.assert_array_equal(fused.read().transpose(1, 2, 0), from_mat)


def test_a_dataset_folder_of_envi_scenes_leaves_no_data_out_of_scale_patches_and_scores(tmp_path, capsys):
    scenes = {name: (synthetic_scene(64, 8, seed=i).numpy() * 4000).astype(np.int16) for i, name in
              enumerate(["field_a", "field_b"])}
    scenes["field_a"][:, :, :24] = NODATA  # a no-data stripe a third of the scene wide
    (tmp_path / "data").mkdir()
    for name, cube in scenes.items():
        write_envi(tmp_path / "data" / name, cube, nodata=NODATA)
    from dhif.data import PatchDataset, load_scenes

    loaded = load_scenes(tmp_path / "data")
    assert list(loaded.valid) == ["field_a"] and not loaded.valid["field_a"][:, :24].any()
    assert loaded.factors["field_a"] == pytest.approx(robust_peak(scenes["field_a"][:, :, 24:].astype(np.float64)))
    marked = {name: cube.clone() for name, cube in loaded.cubes.items()}
    marked["field_a"][:, ~loaded.valid["field_a"]] = float("nan")  # a patch touching no-data would show it
    patches = PatchDataset(marked, 4, torch.full((3, 8), 1 / 8), patch=32, samples=64, valid=loaded.valid)
    assert all(not torch.isnan(patches[i][2]).any() for i in range(len(patches)))
    out = tmp_path / "results"
    assert main(["test", "--data", str(tmp_path / "data"), "--scale", "4", "--srf", str(_srf_file(tmp_path)),
                 "--baselines", "cs", "--no-figures", "--device", "cpu", "--out", str(out)]) == 0
    protocol = json.loads((out / "protocol.json").read_text())
    assert protocol["pixels_without_data"] == {"field_a": 64 * 24}
    rows = json.loads((out / "metrics.json").read_text())
    assert all(np.isfinite(row["psnr"]) for row in rows)


def _srf_file(folder):
    """Three overlapping channels over 8 bands."""
    srf = np.zeros((3, 8))
    for channel, (start, stop) in enumerate([(0, 3), (2, 6), (5, 8)]):
        srf[channel, start:stop] = 1 / (stop - start)
    np.save(folder / "srf.npy", srf)
    return folder / "srf.npy"


def test_pixel_metrics_leave_out_the_pixels_without_data():
    from dhif import metrics

    truth = torch.rand(1, 4, 32, 32) + 0.1
    pred = truth + 0.01 * torch.randn_like(truth)
    valid = torch.ones(32, 32, dtype=torch.bool)
    valid[:6] = False
    spoiled = pred.clone()
    spoiled[..., :6, :] = 1e6  # whatever a method returns where there is no data
    masked = metrics.all_metrics(spoiled, truth, 4, valid=valid)
    pred, truth = pred[..., 6:, :], truth[..., 6:, :]
    cropped = {"psnr": metrics.psnr(pred, truth), "sam": metrics.sam(pred, truth),
               "ergas": metrics.ergas(pred, truth, 4), "rmse": metrics.rmse(pred, truth)}
    for name, value in cropped.items():
        assert masked[name] == pytest.approx(value, rel=1e-5), name
    assert np.isfinite(masked["ssim"]) and masked["ssim"] <= 1


def test_an_lr_hsi_georeference_alone_is_refined_to_the_fused_grid(tmp_path):
    argv = _sensor_pair(tmp_path, 4)
    msi = load_cube(tmp_path / "msi.tif").data.numpy()
    np.save(tmp_path / "msi.npy", msi)  # the HR-MSI as a bare array: no georeference
    argv[argv.index("--hr-msi") + 1] = str(tmp_path / "msi.npy")
    assert main(argv + ["--msi-layout", "chw", "--out", str(tmp_path / "out")]) == 0
    with rasterio.open(tmp_path / "out" / "fused.img") as fused:  # ENVI: the LR-HSI's own format
        assert tuple(fused.transform)[:6] == (7.5, 0.0, ORIGIN[0], 0.0, -7.5, ORIGIN[1])
        assert fused.crs.to_epsg() == 32633 and fused.shape == msi.shape[1:]


def test_validation_during_training_scores_the_pixels_with_data_only():
    from dhif.evaluate import scene_validator
    from dhif.inference import reconstruct_image
    from dhif.metrics import psnr
    from dhif.models import DHIFNet
    from dhif.training import TrainConfig

    config = TrainConfig(scale=4, stages=1, width=4, head_width=8, val_tile=0)
    model, srf = DHIFNet(config), spectral_response("nikon_d700", 31)
    scene = synthetic_scene(64, 31, seed=2)
    valid = torch.ones(64, 64, dtype=torch.bool)
    valid[:, :40] = False
    masked = scene_validator({"a": scene}, config, srf, {"a": valid})(model, "cpu")
    whole = scene_validator({"a": scene}, config, srf)(model, "cpu")
    with torch.no_grad():
        pred = reconstruct_image(model.eval(), degrade(scene, 4)[None], to_msi(scene, srf)[None], 0).clamp(0, 1)
    assert masked == pytest.approx(psnr(pred[..., 40:], scene[None, ..., 40:]), rel=1e-6) and masked != whole
