"""Spectral response functions: HR-MSI = response x HR-HSI."""
from pathlib import Path

import numpy as np
import torch

# Nikon D700, 31 bands (400..700 nm), the integer table used by most CAVE fusion papers;
# each channel is divided by its sum.
_NIKON_D700 = [
    [2, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 6, 11, 17, 21, 22, 21, 20, 20, 19, 19, 18, 18, 17, 17],
    [1, 1, 1, 1, 1, 1, 2, 4, 6, 8, 11, 16, 19, 21, 20, 18, 16, 14, 11, 7, 5, 3, 2, 2, 1, 1, 2, 2, 2, 2, 2],
    [7, 10, 15, 19, 25, 29, 30, 29, 27, 22, 16, 9, 2, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
]
RESPONSES = {"nikon_d700": _NIKON_D700}


def _normalised(table) -> torch.Tensor:
    table = torch.as_tensor(np.asarray(table, dtype=np.float64), dtype=torch.float32)
    sums = table.sum(dim=1, keepdim=True)
    if (sums <= 0).any():
        raise ValueError("spectral response: every channel needs a positive sum")
    return table / sums


def spectral_response(name_or_path="nikon_d700", bands: int = None) -> torch.Tensor:
    """The (channels, bands) response, each channel summing to 1.

    A name from RESPONSES, or a .csv/.npy file holding a (channels, bands) or (bands,
    channels) table; a first column of wavelengths (values above 100) is dropped. With
    `bands`, a table whose band axis is ambiguous is oriented to match it.
    """
    if str(name_or_path) in RESPONSES:
        response = _normalised(RESPONSES[str(name_or_path)])
        if bands is not None and response.shape[1] != bands:
            raise ValueError(f"the spectral response {name_or_path} has {response.shape[1]} bands and the data "
                             f"{bands}; give one for your sensor with --srf FILE (.csv/.npy, one row per band)")
        return response
    path = Path(name_or_path)
    if not path.exists():
        raise ValueError(f"unknown spectral response {name_or_path!r}: use one of {sorted(RESPONSES)} "
                         "or a .csv/.npy file")
    if path.suffix.lower() == ".npy":
        table = np.load(path)
    elif path.suffix.lower() == ".csv":
        table = np.genfromtxt(path, delimiter=",")
        table = table[~np.isnan(table).all(axis=1)]  # header lines
        table = table[:, ~np.isnan(table).all(axis=0)]
        if table.shape[1] > 1 and table[:, 0].min() > 100:  # a wavelength column
            table = table[:, 1:]
    else:
        raise ValueError(f"spectral response file {path} must be .csv or .npy")
    table = np.atleast_2d(table)
    if (bands is not None and table.shape[0] == bands) or (bands is None and table.shape[0] > table.shape[1]):
        table = table.T
    if bands is not None and table.shape[1] != bands:
        raise ValueError(f"spectral response {path} has {table.shape[1]} bands, the data has {bands}")
    return _normalised(table)


def to_msi(hr_hsi: torch.Tensor, srf: torch.Tensor) -> torch.Tensor:
    """The MSI (…, channels, H, W) of an HSI (…, bands, H, W) under a (channels, bands) response."""
    if hr_hsi.shape[-3] != srf.shape[1]:
        raise ValueError(f"to_msi: the HSI has {hr_hsi.shape[-3]} bands, the response {srf.shape[1]}")
    return torch.einsum("kc,...chw->...khw", srf.to(hr_hsi), hr_hsi)
