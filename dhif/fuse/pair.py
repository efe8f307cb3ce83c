"""A user's LR-HSI and HR-MSI as a pair: their scale, registration, wavelengths and the
pixels that have data, each checked with a one-line error before any work."""
import dataclasses
from pathlib import Path

import numpy as np
import torch

from ..data import CubeFile
from ..data.nodata import empty_region, pair_valid
from ..data.rasters import Georeference, check_registration
from ..data.units import check_not_constant
from ..models.dhif_net import SCALES
from .fit import training_patch


@dataclasses.dataclass
class Pair:
    """A user's LR-HSI and HR-MSI, read and checked, with their pixels that have data."""
    lr: CubeFile
    msi: CubeFile
    scale: int
    lr_valid: torch.Tensor = None  # (h, w): LR pixels with data, and data under them; None: all
    hr_valid: torch.Tensor = None  # (H, W): HR pixels with data, and data over them; None: all
    msi_empty: torch.Tensor = None  # (H, W): a masked region of the HR-MSI (nodata.empty_region); None: none
    msi_empty_value: float = None

    def describe_empty(self) -> dict:
        if self.msi_empty is None:
            return None
        return {"pixels": int(self.msi_empty.sum()), "value_in_every_channel": self.msi_empty_value,
                "handling": "left out of training, of the estimate of the PSF and of every score; there every cube "
                            "(fused and baselines) is the LR-HSI upsampled (bicubic), not a fusion"}

    def georeference(self) -> Georeference:
        """The fused grid's: the HR-MSI's, else the LR-HSI's refined by the scale, else None."""
        if self.msi.georeference is not None:
            return self.msi.georeference
        return self.lr.georeference and self.lr.georeference.refined(self.scale)

    def nodata(self):
        """The value marking fused pixels without data: the LR-HSI's, else the HR-MSI's."""
        return self.lr.nodata if self.lr.nodata is not None else self.msi.nodata

    def output_format(self, option: str = None) -> str:
        """--format, else the LR-HSI's raster format where it is georeferenced, else GeoTIFF
        where the HR-MSI is, else .npy."""
        if option:
            return option
        if self.lr.format and self.lr.georeference is not None:
            return self.lr.format
        return "tif" if self.msi.georeference is not None else "npy"


def _check_finite(cube: torch.Tensor, path):
    bad = int((~torch.isfinite(cube)).sum())
    if bad:
        raise ValueError(f"{path} holds {bad} NaN or infinite values; fill or mask them before fusing")


def pair_scale(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int = None) -> int:
    """The resolution ratio of a (C, h, w) LR-HSI and a (m, H, W) HR-MSI, or a one-line
    ValueError saying what is wrong with the pair."""
    (bands, h, w), (channels, height, width) = lr_hsi.shape, hr_msi.shape
    if (h, w) == (height, width):
        raise ValueError(f"the LR-HSI and the HR-MSI are both {h} x {w} pixels; the HR-MSI must be larger by the "
                         "scale (an integer from 2 to 32). Degrade the HSI first if both come at one resolution")
    if h >= height and w >= width:
        raise ValueError(f"the LR-HSI ({bands} x {h} x {w}) is larger than the HR-MSI ({channels} x {height} x "
                         f"{width}); are they swapped? --lr-hsi takes the many-band low-resolution cube")
    ratio = height / h
    scale = scale or round(ratio)
    if scale not in SCALES:
        raise ValueError(f"the HR-MSI is {ratio:.3g} times the LR-HSI's size; DHIF-Net fuses at integer scales "
                         f"from {SCALES[0]} to {SCALES[-1]}: crop or resample the inputs, or give --scale")
    if (height, width) != (h * scale, w * scale):
        raise ValueError(f"the HR-MSI ({height} x {width}) is not the LR-HSI ({h} x {w}) times the scale {scale}; "
                         "crop them to matching areas")
    if channels >= bands:
        raise ValueError(f"the HR-MSI has {channels} bands and the LR-HSI {bands}; the LR-HSI must have more. "
                         "Are --lr-hsi and --hr-msi swapped?")
    return scale


def band_wavelengths(option: str, cube: CubeFile):
    """The LR-HSI's band centres in nm: from --wavelengths ('START:STOP' nm, evenly spaced,
    or a .csv/.txt/.npy file of one value per band), else from the file, else None. A file
    whose wavelengths cannot be used is refused unless --wavelengths replaces them."""
    bands = cube.data.shape[0]
    if not option:
        if cube.wavelength_problem:
            raise ValueError(f"{cube.path}: {cube.wavelength_problem}; give the bands' centres with --wavelengths "
                             "(START:STOP in nm, or a file)")
        return cube.wavelengths
    if ":" in option and not Path(option).exists():
        try:
            start, stop = (float(v) for v in option.split(":"))
        except ValueError:
            raise ValueError(f"--wavelengths {option!r}: expected START:STOP in nm, e.g. 400:700, or a file") from None
        return np.linspace(start, stop, bands)
    path = Path(option)
    if not path.exists():
        raise FileNotFoundError(f"--wavelengths {option!r}: no such file; give START:STOP in nm (e.g. 400:700) or a "
                                "file of one value per band")
    values = np.load(path) if path.suffix.lower() == ".npy" else np.loadtxt(path, delimiter="," if
                                                                           path.suffix.lower() == ".csv" else None)
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size != bands:
        raise ValueError(f"--wavelengths {path} gives {values.size} values for {bands} bands")
    return values


def smallest_trainable_lr(scale: int) -> int:
    """The least LR-HSI side that a model can be trained on at reduced resolution: degraded
    again by the scale, it must still fill one 16-pixel U-Net patch."""
    return 16 * scale


def check_pair(lr_file: CubeFile, msi_file: CubeFile, scale: int = None, trains_here: bool = True) -> Pair:
    """The pair at `scale` (None: the size ratio), with every check that needs no model
    done; trains_here: a model is to be trained on it, which needs enough pixels with data."""
    for cube in (lr_file, msi_file):
        _check_finite(cube.data, cube.path)
        check_not_constant(cube.data, cube.path)
    scale = pair_scale(lr_file.data, msi_file.data, scale)
    lr_size, msi_size = tuple(lr_file.data.shape[1:]), tuple(msi_file.data.shape[1:])
    check_registration(lr_file.georeference, lr_size, msi_file.georeference, msi_size, scale)
    smallest = smallest_trainable_lr(scale)
    if trains_here and min(lr_size) < smallest:
        raise ValueError(f"the LR-HSI is {lr_size[0]} x {lr_size[1]} pixels; training on the pair itself at scale "
                         f"{scale} needs at least {smallest} x {smallest}. Give a trained model with --checkpoint "
                         "instead")
    pair = Pair(lr_file, msi_file, scale, *pair_valid(lr_file.valid, msi_file.valid, scale, lr_size, msi_size))
    if msi_file.valid is None:
        pair.msi_empty, pair.msi_empty_value = empty_region(msi_file.data, lr_file.data, scale)
    if pair.msi_empty is not None:
        pair.lr_valid = pair_valid(lr_file.valid, ~pair.msi_empty, scale, lr_size, msi_size)[0]
        print(f"dhif fuse: warning: {msi_file.path} holds {pair.msi_empty_value:g} in every channel over "
              f"{int(pair.msi_empty.sum())} pixels ({100 * pair.msi_empty.float().mean():.1f}%), a masked region "
              "without data: left out of training, the PSF's estimate and the scores; there every cube is the "
              "LR-HSI upsampled (bicubic), not a fusion", flush=True)
    if trains_here:
        training_patch(lr_size, scale, pair.lr_valid)  # enough pixels with data to train on
    return pair
