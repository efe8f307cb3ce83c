"""The per-voxel adaptive filter of DHIF-Net: fused kernels and their reference.

    adaptive_filter(x, taps, dim, padding="replicate", normalize=True, impl="auto")
    spatio_spectral_filter(x, taps_w, taps_h, taps_c, impl="auto")
    available_impls(device), resolve_impl(impl, device), build_info()

`impl="auto"` takes the compiled kernel when one serves the tensor's device (the
dispatcher then picks CPU or CUDA) and otherwise the pure-PyTorch reference, warning once.
DHIF_FORCE_REFERENCE=1 makes "auto" take the reference. Under forward-mode AD and
torch.func's grad transforms every impl runs the reference (see registrations.needs_reference).
The compiled module is loaded in extension.py, its Python registrations are in
registrations.py, the arguments' and the implementation's checks in checks.py.
"""
import torch

from . import extension
from .checks import IMPLS, PADDINGS, available_impls, check_filter_args, resolve_impl
from .extension import build_info
from .registrations import needs_reference
from .reference import adaptive_filter_reference

extension.check_torch_version()

__all__ = ["adaptive_filter", "spatio_spectral_filter", "available_impls", "resolve_impl", "build_info",
           "adaptive_filter_reference", "IMPLS", "PADDINGS", "SPATIO_SPECTRAL_PASSES"]


def adaptive_filter(x: torch.Tensor, taps: torch.Tensor, dim: int, padding: str = "replicate",
                    normalize: bool = True, impl: str = "auto") -> torch.Tensor:
    """Filter every voxel of x with its own taps along one axis.

    x: Tensor[B, C, H, W]; taps: Tensor[B, K, C, H, W], K odd; dim: 1 bands, 2 rows,
    3 columns (negative allowed). y[p] = sum_i u_i[p] x[p + (i - K//2) e_dim], with
    u = taps / max(||taps||_K, 1e-12) when normalize (F.normalize semantics), else taps.
    Differentiable in x and taps. Half types accumulate in float32.
    """
    check_filter_args(x, taps, dim, padding)
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
