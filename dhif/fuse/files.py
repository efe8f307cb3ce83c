"""The files `dhif fuse` writes: their names, and each cube in the format asked for, in the
LR-HSI's units, with the no-data value where a pixel has no data."""
from pathlib import Path

import torch

from ..baselines import BASELINES
from ..data.rasters import WRITE_DRIVERS, raster_files, write_raster
from ..data.writers import save_cube
from .pair import Pair

CUBE_FORMATS = ("npy", "mat", *WRITE_DRIVERS)


def cube_files(name: str, cube_format: str) -> tuple:
    """The file names of one cube written as `cube_format`."""
    if cube_format in WRITE_DRIVERS:
        return tuple(p.name for p in raster_files(Path(name), cube_format))
    return (f"{name}.{cube_format}",)


def output_files(cube_format: str) -> tuple:
    """What `dhif fuse` writes in its output folder."""
    cubes = [f for name in ("fused", *BASELINES) for f in cube_files(name, cube_format)]
    return ("run", *cubes, "report.json", "fused_composite.png", "fused_spectra.png")


def write_cube(out: Path, name: str, cube: torch.Tensor, cube_format: str, pair: Pair, wavelengths):
    """One (C, H, W) result in the LR-HSI's units, its pixels without data marked with the
    no-data value; rasters with the fused grid's georeference, wavelengths and units."""
    cube = cube.clone()
    if pair.hr_valid is not None:
        cube[:, ~pair.hr_valid] = pair.nodata()
    if cube_format in WRITE_DRIVERS:
        write_raster(out / name, cube.numpy(), cube_format, pair.georeference(), pair.nodata(), wavelengths,
                     pair.lr.units, pair.lr.scale_factor)
    else:
        save_cube(out / f"{name}.{cube_format}", cube.numpy(), pair.lr.layout)
