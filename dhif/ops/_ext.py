"""Loads the compiled kernels (dhif._C) and registers their fake kernels and autograd.

The schemas live in csrc/adaptive_filter.cpp; the dispatcher picks the CPU or CUDA kernel
by device. Importing this module never fails: LOAD_ERROR says why the kernels are absent.
"""
import torch

from .reference import adaptive_filter_reference

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
    def _backward_fake(grad_y, x, taps, inv_norm, dim, padding, normalize, need_grad_x, need_grad_taps):
        return (torch.empty(x.shape if need_grad_x else (0,), dtype=x.dtype, device=x.device),
                torch.empty(taps.shape if need_grad_taps else (0,), dtype=taps.dtype, device=taps.device))

    def _setup_context(ctx, inputs, output):
        x, taps, dim, padding, normalize = inputs
        _, inv_norm = output
        ctx.save_for_backward(x, taps, inv_norm)
        ctx.filter_args = (dim, padding, normalize)
        # inv_norm is not differentiated: no tensor of zeros for its gradient.
        ctx.set_materialize_grads(False)

    def _backward(ctx, grad_y, grad_inv_norm):
        x, taps, inv_norm = ctx.saved_tensors
        need_grad_x, need_grad_taps = ctx.needs_input_grad[:2]
        if grad_y is None:  # only inv_norm was used
            return None, None, None, None, None
        if torch.is_grad_enabled() and any(t.requires_grad for t in (grad_y, x, taps)):
            # create_graph=True: the gradients must be differentiable themselves, and the
            # kernels' are not, so they are taken through the reference instead.
            return (*_differentiable_backward(grad_y, x, taps, need_grad_x, need_grad_taps, *ctx.filter_args),
                    None, None, None)
        grad_x, grad_taps = torch.ops.dhif.adaptive_filter_backward(grad_y, x, taps, inv_norm, *ctx.filter_args,
                                                                    need_grad_x, need_grad_taps)
        return grad_x if need_grad_x else None, grad_taps if need_grad_taps else None, None, None, None

    def _differentiable_backward(grad_y, x, taps, need_grad_x, need_grad_taps, dim, padding, normalize):
        # Saved inputs keep their graph, so second derivatives reach the original x and taps.
        x, taps = (t if t.requires_grad else t.detach().requires_grad_() for t in (x, taps))
        wanted = [t for t, need in ((x, need_grad_x), (taps, need_grad_taps)) if need]
        y = adaptive_filter_reference(x, taps, dim, padding, normalize)
        grads = list(torch.autograd.grad(y, wanted, grad_y, create_graph=True)) if wanted else []
        return grads.pop(0) if need_grad_x else None, grads.pop(0) if need_grad_taps else None

    torch.library.register_autograd(FORWARD, _backward, setup_context=_setup_context)
