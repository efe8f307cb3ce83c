"""Cube files written whole or not at all: .npy, and .mat with key 'hsi' as the authors'
files are (ENVI and GeoTIFF, with their metadata, are rasters.py's)."""
import io
from pathlib import Path

import numpy as np

from ..outputs import write_atomic


def save_cube(path: Path, cube: np.ndarray, layout: str = None):
    """(C, H, W) written atomically as .npy or as .mat with key 'hsi', with its axes in
    `layout` ('chw' or 'hwc'); by default .npy is (C, H, W) and .mat (H, W, C), like the
    authors' files."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    layout = layout or ("hwc" if path.suffix == ".mat" else "chw")
    array = np.ascontiguousarray(cube.transpose(1, 2, 0)) if layout == "hwc" else cube
    if path.suffix == ".mat":
        from scipy.io import savemat

        savemat(buffer, {"hsi": array}, do_compression=True)
    else:
        np.save(buffer, array)
    write_atomic(path, buffer.getvalue())
