"""Datasets on disk: a folder of scenes, each a CAVE scene folder (<name>_ms) or a cube
file (<name>.mat/.npy/.npz/.h5/.tif, e.g. Harvard's .mat files, or an ENVI <name>.hdr with
its data file), named by its stem."""
import dataclasses
from pathlib import Path

import numpy as np
import torch

from .rasters import ENVI_DATA_SUFFIXES
from .readers import _guess_layout, load_cube, read_cave_scene
from .units import robust_peak

CUBE_SUFFIXES = (".mat", ".npy", ".npz", ".h5", ".hdf5", ".tif", ".tiff", ".hdr")


def _scene_name(path: Path):
    """A scene's name from its folder or file, or None for anything else (an ENVI data file
    is the scene of its header)."""
    if path.is_dir():
        return path.name[:-3] if path.name.endswith("_ms") else None
    headers = (path.with_suffix(".hdr"), path.with_name(path.name + ".hdr"))
    if path.suffix.lower() in ENVI_DATA_SUFFIXES and any(h.is_file() for h in headers):
        return None
    if path.name.lower().endswith(tuple(s + ".hdr" for s in ENVI_DATA_SUFFIXES if s)):  # x.img.hdr: scene x
        return path.name.rsplit(".", 2)[0]
    return path.stem if path.suffix.lower() in CUBE_SUFFIXES else None
# How a dataset's values reach the network (recorded in checkpoints and results).
SCALINGS = {
    "as-read": "as read: CAVE's 16-bit PNGs divided by 65535 (the authors' protocol), files as stored",
    "peak": "each scene divided by its robust peak (99.9th percentile of |value|); cubes written back in its units",
}


def find_scenes(root, names=None, require_all: bool = False) -> dict:
    """{name: path} of the scenes under `root`. With `names`, only those, in that order;
    scenes not present are left out, or with require_all (names a user typed) refused,
    naming the scenes that are there."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {root}")
    present = {}
    for path in sorted(root.iterdir()):
        name = _scene_name(path)
        if name is None:
            continue
        if name in present:
            raise ValueError(f"two scenes named {name!r} under {root}: {present[name].name} and {path.name}; "
                             "keep one")
        present[name] = path
    if names is None:
        return present
    absent = [name for name in names if name not in present]
    if absent and require_all:
        raise ValueError(f"no scene {', '.join(map(repr, absent))} under {root}; scenes there: "
                         f"{', '.join(present) or 'none'}")
    return {name: present[name] for name in names if name in present}


class MappedCube:
    """A (C, H, W) view of a .npy cube, read a crop at a time through a memory map and
    divided by `factor` (the scene's factor, Scenes.factors): DataLoader workers share the
    page cache instead of each holding the cube. Indexed as a tensor is, cube[:, rows, cols]."""

    def __init__(self, path, factor: float = 1.0):
        self.path, self.factor = str(path), factor
        self._open()

    def _open(self):
        self.array = np.load(self.path, mmap_mode="r")
        if self.array.ndim != 3:
            raise ValueError(f"{self.path} is a {self.array.ndim}-D array; a cube has 3 axes")
        self.layout = _guess_layout(self.array.shape)
        shape = self.array.shape
        self.shape = torch.Size(shape if self.layout == "chw" else (shape[2], shape[0], shape[1]))

    def __getstate__(self):  # workers started by spawn map the file again
        return {"path": self.path, "factor": self.factor}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._open()

    def __getitem__(self, key):
        bands, rows, cols = key
        block = self.array[bands, rows, cols] if self.layout == "chw" else \
            self.array[rows, cols, bands].transpose(2, 0, 1)
        return torch.from_numpy((block.astype(np.float64) / self.factor).astype(np.float32))


@dataclasses.dataclass
class Scenes:
    cubes: dict    # name -> (C, H, W) float32 tensor or MappedCube, as the network sees it
    factors: dict  # name -> float: the scene in its own units is cube * factor
    scaling: str   # a key of SCALINGS
    valid: dict = dataclasses.field(default_factory=dict)  # name -> (H, W) bool, for scenes with no-data pixels


def _read_scene(path: Path) -> tuple:
    """(float32 (C, H, W) cube, its (H, W) mask of pixels with data or None)."""
    if path.is_dir():
        return read_cave_scene(path, bands=None), None
    cube = load_cube(path)
    return cube.data.float(), cube.valid


def load_scenes(root, names=None, require_all: bool = False, scaling: str = "peak") -> Scenes:
    """The scenes found under root (find_scenes), scaled for the network (SCALINGS), with
    the masks of those that have no-data pixels (left out of the peak). .npy files scaled by
    their peak stay on disk as MappedCubes."""
    cubes, factors, masks = {}, {}, {}
    for name, path in find_scenes(root, names, require_all).items():
        mapped = scaling == "peak" and path.suffix.lower() == ".npy"
        cube, valid = (np.load(path, mmap_mode="r"), None) if mapped else _read_scene(path)
        if valid is not None:
            masks[name] = valid
        factors[name] = robust_peak(cube if valid is None else cube[:, valid]) if scaling == "peak" else 1.0
        if not factors[name]:
            raise ValueError(f"scene {name} ({path}) is zero everywhere; check the file or leave it out")
        # In place: a large scene is not held twice.
        cubes[name] = MappedCube(path, factors[name]) if mapped else cube.div_(factors[name])
    return Scenes(cubes, factors, scaling, masks)
