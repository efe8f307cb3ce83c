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


def empty_region(msi: torch.Tensor, lr_hsi: torch.Tensor, scale: int) -> tuple:
    """((H, W) bool, value) of a masked region of an (m, H, W) HR-MSI that declares no
    no-data value: pixels where every channel holds one value (a fill: the most common
    such value), solid (they survive an opening by a 5 x 5 window) and over at least 0.1%
    of the image, while the (C, h, w) LR-HSI has signal there (a real dark area is dark in
    both); (None, None) where there is none."""
    same = (msi == msi[:1]).all(0)
    if not same.any():
        return None, None
    values, counts = torch.unique(msi[0][same], return_counts=True)
    value = values[counts.argmax()]
    fill = (same & (msi[0] == value)).float()[None, None]
    opened = F.max_pool2d(-F.max_pool2d(-fill, 5, 1, 2), 5, 1, 2)
    region = (F.max_pool2d(opened, 5, 1, 2)[0, 0] > 0) & (fill[0, 0] > 0)  # with its ragged edge
    if region.sum() < max(25, region.numel() // 1000):
        return None, None
    under = -F.max_pool2d(-region.float()[None, None], scale)[0, 0] > 0  # LR pixels wholly over it
    hsi = lr_hsi.double()
    if under.any() and hsi[:, under].mean() < 0.05 * hsi.mean():
        return None, None
    return region, float(value)
