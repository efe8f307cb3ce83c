"""The per-voxel adaptive filter of DHIF-Net: fused kernels and their reference.

    adaptive_filter(x, taps, dim, padding="replicate", normalize=True, impl="auto")
    spatio_spectral_filter(x, taps_w, taps_h, taps_c, impl="auto")
    available_impls(device), resolve_impl(impl, device), build_info()

`impl="auto"` takes the compiled kernel when one serves the tensor's device (the
dispatcher then picks CPU or CUDA) and otherwise the pure-PyTorch reference, warning once.
DHIF_FORCE_REFERENCE=1 makes "auto" take the reference. Under forward-mode AD and
torch.func's grad transforms every impl runs the reference (see registrations.needs_reference).
The compiled module is loaded in extension.py, its Python registrations are in
registrations.py.
"""
import os
import warnings

import torch

from . import extension
from .extension import build_info
from .registrations import needs_reference
from .reference import adaptive_filter_reference

__all__ = ["adaptive_filter", "spatio_spectral_filter", "available_impls", "resolve_impl", "build_info",
           "adaptive_filter_reference", "IMPLS", "PADDINGS", "SPATIO_SPECTRAL_PASSES"]

IMPLS = ("auto", "fused", "reference")
PADDINGS = ("replicate", "zeros")
MAX_TAPS = 2**31 - 1  # the kernels count taps in an int
_FUSED_DEVICE_TYPES = extension.fused_device_types()
extension.check_torch_version()
_warned_fallback = set()


def available_impls(device="cpu") -> list:
    """["reference", "fused"], or ["reference"] when no compiled kernel serves `device`."""
    device_type = torch.device(device).type
    return ["reference", "fused"] if device_type in _FUSED_DEVICE_TYPES else ["reference"]


def _check_args(x, taps, dim, padding):
    if not isinstance(x, torch.Tensor) or not isinstance(taps, torch.Tensor):
        raise TypeError("adaptive_filter: x and taps must be tensors")
    if x.dim() != 4:
        raise ValueError(f"adaptive_filter: x must be 4-D (B, C, H, W), got shape {tuple(x.shape)}")
    if taps.dim() != 5:
        raise ValueError(f"adaptive_filter: taps must be 5-D (B, K, C, H, W), got shape {tuple(taps.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"adaptive_filter: x must be a floating-point tensor, got {x.dtype}")
    if x.dtype != taps.dtype:
        raise TypeError(f"adaptive_filter: x and taps must have the same dtype, got {x.dtype} and {taps.dtype}")
    if x.device != taps.device:
        raise ValueError(f"adaptive_filter: x and taps must be on the same device, got {x.device} and {taps.device}")
    if taps.shape[1] % 2 != 1:
        raise ValueError(f"adaptive_filter: the number of taps K = taps.shape[1] must be odd, got {taps.shape[1]}")
    if taps.shape[1] > MAX_TAPS:
        raise ValueError(f"adaptive_filter: the number of taps K = taps.shape[1] must be at most {MAX_TAPS}, "
                         f"got {taps.shape[1]}")
    if taps.shape[0] != x.shape[0] or tuple(taps.shape[2:]) != tuple(x.shape[1:]):
        raise ValueError(f"adaptive_filter: taps of shape {tuple(taps.shape)} do not match x of shape "
                         f"{tuple(x.shape)}; expected (B, K, C, H, W) = ({x.shape[0]}, K, {', '.join(map(str, x.shape[1:]))})")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim not in (1, 2, 3, -1, -2, -3):
        raise ValueError(f"adaptive_filter: dim must be 1 (bands), 2 (rows) or 3 (columns), or -3..-1, got {dim!r}")
    if padding not in PADDINGS:
        raise ValueError(f"adaptive_filter: unknown padding {padding!r}; expected one of {PADDINGS}")


def resolve_impl(impl: str, device) -> str:
    """The implementation that `impl` ("auto", "fused", "reference") runs on `device`."""
    if impl not in IMPLS:
        raise ValueError(f"adaptive_filter: unknown impl {impl!r}; expected one of {IMPLS}")
    device = torch.device(device)
    fused_here = device.type in _FUSED_DEVICE_TYPES
    if impl == "fused":
        if not fused_here:
            reason = f"dhif._C failed to load: {extension.LOAD_ERROR}" if extension.LOAD_ERROR else \
                f"dhif._C was built without kernels for device type '{device.type}'"
            raise RuntimeError(f"adaptive_filter: impl='fused' is unavailable on {device}: {reason}. "
                               "Rebuild with `pip install --no-build-isolation -e .` (see README).")
        return "fused"
    if impl == "reference" or os.environ.get("DHIF_FORCE_REFERENCE", "") == "1":
        return "reference"
    if not fused_here:
        if device.type not in _warned_fallback:
            _warned_fallback.add(device.type)
            warnings.warn(f"dhif: no fused adaptive-filter kernel for {device.type}; using the slower "
                          "pure-PyTorch reference", RuntimeWarning, stacklevel=3)
        return "reference"
    return "fused"


def adaptive_filter(x: torch.Tensor, taps: torch.Tensor, dim: int, padding: str = "replicate",
                    normalize: bool = True, impl: str = "auto") -> torch.Tensor:
    """Filter every voxel of x with its own taps along one axis.

    x: Tensor[B, C, H, W]; taps: Tensor[B, K, C, H, W], K odd; dim: 1 bands, 2 rows,
    3 columns (negative allowed). y[p] = sum_i u_i[p] x[p + (i - K//2) e_dim], with
    u = taps / max(||taps||_K, 1e-12) when normalize (F.normalize semantics), else taps.
    Differentiable in x and taps. Half types accumulate in float32.
    """
    _check_args(x, taps, dim, padding)
    if resolve_impl(impl, x.device) == "reference" or needs_reference(x, taps):
        return adaptive_filter_reference(x, taps, dim, padding, normalize)
    y, _ = torch.ops.dhif.adaptive_filter_forward(x, taps, dim, padding, normalize)
    return y


# DHIF-Net's three passes, in order: (dim, padding) for the columns, the rows, the bands.
SPATIO_SPECTRAL_PASSES = ((3, "replicate"), (2, "replicate"), (1, "zeros"))


def spatio_spectral_filter(x: torch.Tensor, taps_w: torch.Tensor, taps_h: torch.Tensor, taps_c: torch.Tensor,
                           impl: str = "auto") -> torch.Tensor:
    """DHIF-Net's filtered estimate U: columns (replicate), rows (replicate), then bands
    (zeros), each pass with its own L2-normalised taps Tensor[B, K, C, H, W]."""
    for taps, (dim, padding) in zip((taps_w, taps_h, taps_c), SPATIO_SPECTRAL_PASSES):
        x = adaptive_filter(x, taps, dim, padding, True, impl)
    return x
