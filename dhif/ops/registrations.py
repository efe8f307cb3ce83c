"""The op's Python registrations beside its schemas (csrc/adaptive_filter.cpp): fake
kernels for torch.compile, autograd, torch.vmap batching rules, and when a call must run
the reference instead (forward-mode AD, torch.func's grad transforms). The dispatcher picks
the CPU or CUDA kernel by device.
"""
import torch

from .checks import check_backward_args, check_filter_args
from .extension import BACKWARD, FORWARD, _C
from .reference import adaptive_filter_reference


def _accumulate_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def forward_mode_active() -> bool:
    """Whether forward-mode AD is on (torch.autograd.forward_ad, or torch.func's jvp,
    jacfwd and hessian, which open the same dual level)."""
    return getattr(torch.autograd.forward_ad, "_current_level", -1) >= 0


def needs_reference(*tensors) -> bool:
    """Whether this call must run the reference: the kernels have no forward-mode formula
    (a custom op without one gives a zero tangent), and torch.func's grad, vjp and jacrev
    refuse the autograd.Function that torch.library generates for the op. The reference
    supports both; torch.vmap alone keeps the kernels (the batching rules below). Code being
    compiled sees neither (torch.compile traces the op's own autograd)."""
    if torch.compiler.is_compiling():
        return False
    return forward_mode_active() or any(torch._C._functorch.is_gradtrackingtensor(t) for t in tensors)


if _C is not None:

    # The fake kernels check what the compiled ones check (csrc/adaptive_filter_checks.h), so
    # that torch.compile and torch.export refuse a bad call where eager does, naming the same
    # problem, instead of failing later and differently.
    @torch.library.register_fake(FORWARD)
    def _forward_fake(x, taps, dim, padding, normalize):
        check_filter_args(x, taps, dim, padding)
        y = torch.empty(x.shape, dtype=x.dtype, device=x.device)
        inv_norm = torch.empty(x.shape, dtype=_accumulate_dtype(x.dtype), device=x.device)
        return y, inv_norm

    @torch.library.register_fake(BACKWARD)
    def _backward_fake(grad_y, x, taps, inv_norm, dim, padding, normalize, need_grad_x, need_grad_taps):
        check_filter_args(x, taps, dim, padding)
        check_backward_args(grad_y, x, inv_norm)
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
        if forward_mode_active() or (torch.is_grad_enabled() and any(t.requires_grad for t in (grad_y, x, taps))):
            # create_graph=True (or forward-over-reverse): the gradients must be
            # differentiable themselves, and the kernels' are not, so they are taken through
            # the reference instead.
            return (*_differentiable_backward(grad_y, x, taps, need_grad_x, need_grad_taps, *ctx.filter_args),
                    None, None, None)
        grad_x, grad_taps = torch.ops.dhif.adaptive_filter_backward(grad_y, x, taps, inv_norm, *ctx.filter_args,
                                                                    need_grad_x, need_grad_taps)
        return grad_x if need_grad_x else None, grad_taps if need_grad_taps else None, None, None, None

    def _differentiable_backward(grad_y, x, taps, need_grad_x, need_grad_taps, dim, padding, normalize):
        # The reference's vector-Jacobian product, itself differentiable in grad_y and in the
        # saved inputs, which keep their graph. torch.func.vjp takes partial derivatives:
        # torch.autograd.grad(y, (x, taps)) would also follow the path from taps to x where
        # x was made from the same taps (two passes sharing them) and count it twice.
        _, pullback = torch.func.vjp(lambda x, taps: adaptive_filter_reference(x, taps, dim, padding, normalize),
                                     x, taps)
        grad_x, grad_taps = pullback(grad_y)
        return grad_x if need_grad_x else None, grad_taps if need_grad_taps else None

    torch.library.register_autograd(FORWARD, _backward, setup_context=_setup_context)

    # torch.vmap: the op already has a batch dimension, so a vmapped call is one call on the
    # vmapped and the op's batch dimensions merged (an unbatched argument is expanded).
    def _merge_batches(batch_size, tensors, in_dims):
        merged = []
        for tensor, in_dim in zip(tensors, in_dims):
            tensor = tensor.movedim(in_dim, 0) if in_dim is not None else tensor.expand(batch_size, *tensor.shape)
            merged.append(tensor.reshape(-1, *tensor.shape[2:]))
        return merged

    def _split_batches(batch_size, tensors):
        return tuple(t.view(batch_size, -1, *t.shape[1:]) if t.numel() else t for t in tensors), \
            tuple(0 if t.numel() else None for t in tensors)

    @torch.library.register_vmap(FORWARD)
    def _forward_vmap(info, in_dims, x, taps, dim, padding, normalize):
        x, taps = _merge_batches(info.batch_size, (x, taps), in_dims[:2])
        return _split_batches(info.batch_size, torch.ops.dhif.adaptive_filter_forward(x, taps, dim, padding,
                                                                                      normalize))

    @torch.library.register_vmap(BACKWARD)
    def _backward_vmap(info, in_dims, grad_y, x, taps, inv_norm, dim, padding, normalize, need_grad_x,
                       need_grad_taps):
        tensors = _merge_batches(info.batch_size, (grad_y, x, taps, inv_norm), in_dims[:4])
        grads = torch.ops.dhif.adaptive_filter_backward(*tensors, dim, padding, normalize, need_grad_x,
                                                        need_grad_taps)
        return _split_batches(info.batch_size, grads)
