"""Which implementation serves a call, and the checks of its arguments. The compiled
launchers check the same with TORCH_CHECK (csrc/adaptive_filter_checks.h) for callers of
torch.ops.dhif directly; these run first on every call, so that the reference (which has
no C++) and the kernels refuse the same inputs, naming the same problem (both are tested
against one list of bad inputs, tests/test_adaptive_filter.py's BAD_INPUTS)."""
import os
import warnings

import torch

from . import extension

IMPLS = ("auto", "fused", "reference")
PADDINGS = ("replicate", "zeros")
MAX_TAPS = 2**31 - 1  # the kernels count taps in an int
_FUSED_DEVICE_TYPES = extension.fused_device_types()
_warned_fallback = set()


def available_impls(device="cpu") -> list:
    """["reference", "fused"], or ["reference"] when no compiled kernel serves `device`."""
    device_type = torch.device(device).type
    return ["reference", "fused"] if device_type in _FUSED_DEVICE_TYPES else ["reference"]


def check_filter_args(x, taps, dim, padding):
    """A TypeError or ValueError naming what is wrong with adaptive_filter's arguments."""
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


def check_backward_args(grad_y, x, inv_norm):
    """A ValueError where the backward's grad_y or inv_norm does not fit x."""
    if tuple(grad_y.shape) != tuple(x.shape):
        raise ValueError(f"adaptive_filter backward: grad_y of shape {tuple(grad_y.shape)} does not match x of shape "
                         f"{tuple(x.shape)}")
    if grad_y.dtype != x.dtype or grad_y.device != x.device:
        raise ValueError("adaptive_filter backward: grad_y must have x's dtype and device")
    if tuple(inv_norm.shape) != tuple(x.shape) or inv_norm.device != x.device:
        raise ValueError("adaptive_filter backward: inv_norm must have x's shape and device")


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
