"""Pixels without data (a raster's no-data value): found, filled so that no sentinel value
reaches a blur, a scale or the network, and left out of training, scaling and scores
(dhif.metrics.valid_pixels)."""
import math

import torch
import torch.nn.functional as F


def mask_nodata(data: torch.Tensor, nodata, path) -> torch.Tensor:
    """(H, W) bool, False where any band of (C, H, W) holds the no-data value, or None where
    every pixel has data. Pixels without data are filled in place with their band's mean
    over the others."""
    if nodata is None:
        return None
    missing = (torch.isnan(data) if math.isnan(nodata) else data == nodata).any(0)
    if not missing.any():
        return None
    if missing.all():
        raise ValueError(f"the no-data value {nodata:g} of {path} covers the whole image: there is nothing to fuse")
    valid = ~missing
    data[:, missing] = data[:, valid].mean(1, keepdim=True).to(data.dtype)
    return valid


def nodata_for_json(value):
    """A no-data value as JSON can hold it: NaN (a common one) as the string 'nan'."""
    return value if value is None or math.isfinite(value) else str(value)


def pair_valid(lr_valid, msi_valid, scale: int, lr_size: tuple, msi_size: tuple) -> tuple:
    """(LR mask, HR mask) of a pair, each None where all pixels have data: an LR pixel has
    data where it and every HR-MSI pixel under it have; an HR pixel where it and the LR
    pixel over it have."""
    if lr_valid is None and msi_valid is None:
        return None, None
    lr_valid = torch.ones(lr_size, dtype=torch.bool) if lr_valid is None else lr_valid
    msi_valid = torch.ones(msi_size, dtype=torch.bool) if msi_valid is None else msi_valid
    msi_blocks = -F.max_pool2d(-msi_valid[None, None].float(), scale)[0, 0] > 0  # all HR pixels under one
    low = lr_valid & msi_blocks
    high = msi_valid & lr_valid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
    return low, high
