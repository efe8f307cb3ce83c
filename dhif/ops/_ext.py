"""Loads the compiled kernels (dhif._C) and registers their fake kernels and autograd.

The schemas live in csrc/adaptive_filter.cpp; the dispatcher picks the CPU or CUDA kernel
by device. Importing this module never fails: LOAD_ERROR says why the kernels are absent.
"""
import torch

try:
    from dhif import _C
    LOAD_ERROR = None
except ImportError as error:  # not built, or built against another torch
    _C = None
    LOAD_ERROR = error

FORWARD = "dhif::adaptive_filter_forward"
BACKWARD = "dhif::adaptive_filter_backward"


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def fused_device_types() -> frozenset:
    """Device types ('cpu', 'cuda') that a compiled kernel serves on this machine."""
    if _C is None:
        return frozenset()
    types = set()
    if torch._C._dispatch_has_kernel_for_dispatch_key(FORWARD, "CPU"):
        types.add("cpu")
    if torch._C._dispatch_has_kernel_for_dispatch_key(FORWARD, "CUDA") and torch.cuda.is_available():
        types.add("cuda")
    return frozenset(types)


def build_info() -> dict:
    """How dhif._C was compiled, or {'loaded': False, 'error': ...} when it was not."""
    if _C is None:
        return {"loaded": False, "error": str(LOAD_ERROR), "torch": None, "cuda": None, "openmp": False,
                "cuda_arch_list": ""}
    return {"loaded": True, **_C.build_info()}


if _C is not None:

    @torch.library.register_fake(FORWARD)
    def _forward_fake(x, taps, dim, padding, normalize):
        y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        inv_norm = torch.empty(x.shape, dtype=_accumulate_dtype(x.dtype), device=x.device)
        return y, inv_norm

    @torch.library.register_fake(BACKWARD)
    def _backward_fake(grad_y, x, taps, inv_norm, dim, padding, normalize):
        return (torch.empty(x.shape, dtype=x.dtype, device=x.device),
                torch.empty(taps.shape, dtype=taps.dtype, device=taps.device))

    def _setup_context(ctx, inputs, output):
        x, taps, dim, padding, normalize = inputs
        _, inv_norm = output
        ctx.save_for_backward(x, taps, inv_norm)
        ctx.filter_args = (dim, padding, normalize)

    def _backward(ctx, grad_y, grad_inv_norm):
        x, taps, inv_norm = ctx.saved_tensors
        grad_x, grad_taps = torch.ops.dhif.adaptive_filter_backward(grad_y, x, taps, inv_norm, *ctx.filter_args)
        return grad_x, grad_taps, None, None, None

    torch.library.register_autograd(FORWARD, _backward, setup_context=_setup_context)
