"""Readers of hyperspectral cubes: the CAVE database's PNG folders, .mat (v5 and v7.3),
.npy/.npz, .h5, TIFF stacks, and ENVI and GeoTIFF rasters (rasters.py). Every reader returns
a float32 tensor (C, H, W); a user's file keeps its units (CAVE's PNGs are divided by their
bit depth's maximum, the authors' protocol)."""
import dataclasses
import re
from pathlib import Path

import numpy as np
import torch

from .nodata import mask_nodata, nodata_for_json
from .rasters import Georeference, is_raster, read_raster

CAVE_BAND = re.compile(r".*_(\d+)\.png$", re.IGNORECASE)


def _png_band(path: Path):
    """One band image as (float32 array in [0, 1], bits per sample)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
    except Exception as error:
        raise ValueError(f"cannot read CAVE band {path}: {error}") from error
    if mode == "P":
        raise ValueError(f"CAVE band {path} is a palette image (its pixels are palette indices, not intensities); "
                         "save it as a greyscale PNG")
    if array.ndim == 3:  # watercolors: 8-bit RGBA with R = G = B
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise ValueError(f"CAVE band {path} is a colour image whose red, green and blue differ; a band image "
                             "is greyscale (or R = G = B)")
        array = array[..., 0]
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255.0, 8
    if array.dtype in (np.uint16, np.int32, np.uint32):  # Pillow opens 16-bit PNGs as I;16 or I
        return array.astype(np.float32) / 65535.0, 16
    raise ValueError(f"CAVE band {path} has unexpected pixel type {array.dtype}")


def cave_band_files(folder) -> list:
    """The band PNGs of a CAVE scene folder, in band order. The database nests each scene
    as <scene>_ms/<scene>_ms/; either level may be given. RGB bitmaps and Thumbs.db are not
    bands and are ignored."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"CAVE scene folder not found: {folder}")
    files = [p for p in folder.iterdir() if CAVE_BAND.match(p.name)]
    if not files:
        nested = folder / folder.name
        if nested.is_dir():
            return cave_band_files(nested)
        raise ValueError(f"no band images (<scene>_ms_NN.png) in {folder}")
    files.sort(key=lambda p: int(CAVE_BAND.match(p.name).group(1)))
    numbers = [int(CAVE_BAND.match(p.name).group(1)) for p in files]
    if numbers != list(range(1, len(files) + 1)):
        expected = set(range(1, max(numbers) + 1))
        missing, unexpected = sorted(expected - set(numbers)), sorted(set(numbers) - expected)
        duplicated = sorted({n for n in numbers if numbers.count(n) > 1})
        problems = ([f"missing {missing}"] if missing else []) + ([f"unexpected {unexpected}"] if unexpected else []) \
            + ([f"more than one file for {duplicated}"] if duplicated else [])
        raise ValueError(f"CAVE scene {folder}: band files must be numbered _01 to _NN; band numbers "
                         f"{'; '.join(problems)} (found {len(files)} band files)")
    return files


def read_cave_scene(path, bands: int = 31) -> torch.Tensor:
    """A CAVE scene (bands, H, W) in [0, 1] from its folder: 16-bit PNGs / 65535, the 8-bit
    RGBA bands of watercolors / 255. Other formats are passed to read_cube."""
    path = Path(path)
    if path.is_file():
        return read_cube(path)
    files = cave_band_files(path)
    if bands is not None and len(files) != bands:
        raise ValueError(f"CAVE scene {path} has {len(files)} bands, expected {bands}")
    bands_read = [_png_band(f) for f in files]
    planes = [plane for plane, _ in bands_read]
    for f, (plane, bits) in zip(files, bands_read):
        if plane.shape != planes[0].shape:
            raise ValueError(f"band {f} is {plane.shape}, the first band is {planes[0].shape}")
        if bits != bands_read[0][1]:
            raise ValueError(f"band {f} is {bits}-bit and {files[0].name} is {bands_read[0][1]}-bit: the bands of "
                             "a scene must share one bit depth to share one scale")
    return torch.from_numpy(np.stack(planes))


LAYOUTS = ("auto", "chw", "hwc")


def _guess_layout(shape) -> str:
    """'hwc' or 'chw' where the shape says so without doubt, else a ValueError."""
    h, w, c = shape
    if h == w != c:
        return "hwc"
    if w == c != h:
        return "chw"
    # Otherwise the bands are the end axis that is clearly the smallest: both ends being
    # small ((20, 100, 50): 20 rows and 50 bands, or 20 bands and 50 columns?) is a guess.
    small, large = sorted((shape[0], shape[2]))
    if small * 4 <= large and small <= shape[1] and shape[0] != shape[2]:
        return "chw" if shape[0] == small else "hwc"
    raise ValueError(f"cannot tell which axis of an array of shape {tuple(shape)} holds the bands; give the "
                     "layout: 'chw' (bands first) or 'hwc' (bands last)")


def _hdf5_arrays(path: Path, transpose: bool) -> dict:
    """Every dataset of an HDF5 file by its path; MATLAB v7.3 stores arrays transposed."""
    import h5py

    arrays = {}
    with h5py.File(path, "r") as f:
        def take(name, item):
            if isinstance(item, h5py.Dataset):
                arrays[name] = np.asarray(item).T if transpose else np.asarray(item)
        f.visititems(take)
    return arrays


def _mat_arrays(path: Path) -> dict:
    try:
        from scipy.io import loadmat

        return {k: v for k, v in loadmat(path).items() if isinstance(v, np.ndarray)}
    except NotImplementedError:  # MATLAB v7.3 is HDF5
        return _hdf5_arrays(path, transpose=True)


def _container_arrays(path: Path, suffix: str) -> dict:
    if suffix == ".mat":
        return _mat_arrays(path)
    if suffix == ".npz":
        return dict(np.load(path))
    if suffix in (".h5", ".hdf5"):
        return _hdf5_arrays(path, transpose=False)
    return None


def _only_cube(path: Path, arrays: dict) -> np.ndarray:
    """The one 3-D numeric array of a container; with several candidates and no key, the
    choice is the user's, never a guess."""
    numeric = {k: v for k, v in arrays.items() if np.issubdtype(v.dtype, np.number)}
    if not numeric:
        raise ValueError(f"{path} holds no numeric array")
    if len(numeric) == 1:
        return next(iter(numeric.values()))
    cubes = [v for v in numeric.values() if v.ndim == 3]
    if len(cubes) == 1:
        return cubes[0]
    listed = ", ".join(f"{k} {tuple(v.shape)}" for k, v in numeric.items())
    raise ValueError(f"{path} holds several arrays ({listed}); name the one to read (--lr-key or --msi-key "
                     "for dhif fuse)")


def _read_arrays(path: Path, key: str = None) -> tuple:
    """(the chosen array, its name or None, every array of the file by name)."""
    if not path.exists():
        raise FileNotFoundError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if key is not None and suffix in (".npy", ".tif", ".tiff"):
        raise ValueError(f"{path} holds a single array, so an array name ({key!r}) does not apply to it")
    try:
        if suffix == ".npy":
            return np.load(path, mmap_mode="r"), None, {}
        if suffix in (".tif", ".tiff"):
            import tifffile

            return tifffile.imread(path), None, {}
        arrays = _container_arrays(path, suffix)
    except Exception as error:  # each library has its own error types for corrupt files
        raise ValueError(f"cannot read {path}: {error}") from error
    if arrays is None:
        raise ValueError(f"unsupported file type {suffix!r} for {path}: use .mat, .npy, .npz, .h5, .tif or ENVI "
                         "(.hdr)")
    if key is not None:
        if key not in arrays:
            raise KeyError(f"{path} has no array {key!r}; it has {sorted(arrays)}")
        return arrays[key], key, arrays
    cube = _only_cube(path, arrays)
    return cube, next(k for k, v in arrays.items() if v is cube), arrays


def read_array(path, key: str = None) -> np.ndarray:
    """The raw array stored in a .mat/.npy/.npz/.h5/.tif file: the given key, or the only
    array, or the only 3-D one; several candidates without a key are refused, listed."""
    return np.asarray(_read_arrays(Path(path), key)[0])


# Names under which files store their bands' centre wavelengths.
WAVELENGTH_KEYS = ("wavelength", "wavelengths", "wavelength_nm", "wl", "lambda", "bands_nm", "centers")


def _wavelengths_nm(arrays: dict, bands: int):
    """The bands' wavelengths in nm from a 1-D array of the file under a known name, or None.
    Values below 30 are taken as micrometres."""
    for name, values in arrays.items():
        if name.split("/")[-1].lower() in WAVELENGTH_KEYS and np.size(values) == bands and \
                np.issubdtype(values.dtype, np.number):
            nm = np.asarray(values, dtype=np.float64).ravel()
            return nm * 1000 if nm.max() < 30 else nm
    return None


@dataclasses.dataclass
class CubeFile:
    """A cube read from a user's file, with what the file said about it."""
    data: torch.Tensor   # (C, H, W) float32 (float64 if stored so), in the file's units
    path: str
    key: str             # the array's name in a container, or None
    layout: str          # 'chw' or 'hwc': the axes as stored
    dtype: str           # as stored, e.g. 'uint16'
    wavelengths: np.ndarray = None  # nm per band, where the file gives them
    wavelength_problem: str = None  # why the file's wavelengths are unusable, where they are
    format: str = None   # for rasters (they keep a georeference), the format to write: 'envi' or 'tif'; else None
    georeference: Georeference = None
    nodata: float = None  # the file's no-data value
    valid: torch.Tensor = None  # (H, W) bool: pixels with data, where some have none
    units: str = None    # of the values, where the file names them
    scale_factor: float = None  # stored value / physical value, where the file gives it

    def values_read(self) -> str:
        """How the stored numbers became the cube's values, for reports."""
        if np.issubdtype(np.dtype(self.dtype), np.integer):
            return f"{self.dtype} values as stored (not divided by the type's maximum)"
        return f"{self.dtype} values as stored"

    def valid_values(self) -> torch.Tensor:
        """The (C, N) values of the pixels with data (every pixel where none is missing)."""
        return self.data.reshape(self.data.shape[0], -1) if self.valid is None else self.data[:, self.valid]

    def describe(self) -> dict:
        missing = 0 if self.valid is None else int((~self.valid).sum())
        return {"path": self.path, "key": self.key, "layout": self.layout, "dtype": self.dtype,
                "shape_chw": list(self.data.shape), "values": self.values_read(),
                "wavelengths_nm": None if self.wavelengths is None else
                [round(float(w), 3) for w in (self.wavelengths[0], self.wavelengths[-1])],
                "format": self.format, "georeference": self.georeference and self.georeference.describe(),
                "nodata": nodata_for_json(self.nodata),
                "pixels_without_data": missing, "units": self.units, "scale_factor": self.scale_factor}


def _working_dtype(stored) -> type:
    """float64 stays float64 (a cube's scaling is exact then); the rest becomes float32."""
    return np.float64 if stored == np.float64 else np.float32


def _load_raster(path: Path, layout: str) -> CubeFile:
    if layout not in ("auto", "chw"):
        raise ValueError(f"{path} is a raster whose bands GDAL knows; a layout ({layout!r}) does not apply to it")
    raster = read_raster(path)
    data = torch.from_numpy(raster.data.astype(_working_dtype(raster.data.dtype)))
    valid = mask_nodata(data, raster.nodata, path)
    fmt = "envi" if raster.driver == "ENVI" else "tif"  # GeoTIFF, and what dhif cannot write (ERDAS Imagine)
    return CubeFile(data, str(path), None, "chw", raster.data.dtype.name, raster.wavelengths,
                    raster.wavelength_problem, fmt, raster.georeference, raster.nodata, valid, raster.units,
                    raster.scale_factor)


def load_cube(path, key: str = None, layout: str = "auto") -> CubeFile:
    """A hyperspectral cube from .mat/.npy/.npz/.h5/.tif or ENVI with what the file says about
    it (CubeFile); a raster's no-data pixels are filled and marked (CubeFile.valid). Values
    keep their units: integers are converted to float32 as they are.
    layout: 'chw' (bands first), 'hwc' (bands last) or 'auto', which decides only when the
    shape leaves no doubt (square images, or one end axis far smaller than the other) and
    otherwise asks for the layout."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    path = Path(path)
    if is_raster(path):
        if key is not None:
            raise ValueError(f"{path} is a raster of one cube, so an array name ({key!r}) does not apply to it")
        return _load_raster(path, layout)
    array, name, arrays = _read_arrays(path, key)
    if array.ndim != 3:
        raise ValueError(f"{path}{f' [{name}]' if name else ''} is a {array.ndim}-D array of shape "
                         f"{tuple(array.shape)}; a cube has 3 axes (bands and two spatial ones)")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"{path}{f' [{name}]' if name else ''} holds {array.dtype} values, not real numbers")
    stored = _guess_layout(array.shape) if layout == "auto" else layout
    chw = array.transpose(2, 0, 1) if stored == "hwc" else array
    dtype = _working_dtype(array.dtype)
    # A memory map is copied; an array read whole is converted in place where it can be.
    copy = np.array if isinstance(array, np.memmap) else np.ascontiguousarray
    data = torch.from_numpy(copy(chw, dtype=dtype))
    return CubeFile(data, str(path), name, stored, str(array.dtype), _wavelengths_nm(arrays, data.shape[0]))


def read_cube(path, key: str = None, layout: str = "auto") -> torch.Tensor:
    """The (C, H, W) float32 tensor of load_cube, in the file's units."""
    return load_cube(path, key, layout).data.float()
