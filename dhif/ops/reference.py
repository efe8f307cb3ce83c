"""Pure-PyTorch adaptive filter: the authors' stack-and-sum, written out of place.

It is the oracle that every fused kernel is tested against and the fallback when no
compiled kernel serves a device. It materialises K shifted copies of the input, which is
exactly the cost the fused kernels avoid.
"""
import torch
import torch.nn.functional as F


def shifted_stack(x: torch.Tensor, axis: int, taps: int, padding: str) -> torch.Tensor:
    """Tensor[B, K, C, H, W]: the K copies of x shifted by -K//2 .. K//2 along `axis`."""
    radius = taps // 2
    length = x.shape[axis]
    if padding == "replicate":
        index = torch.arange(-radius, length + radius, device=x.device).clamp_(0, length - 1)
        padded = x.index_select(axis, index)
    else:
        pad = [0, 0] * (x.dim() - 1 - axis) + [radius, radius]
        padded = F.pad(x, pad)
    return torch.stack([padded.narrow(axis, i, length) for i in range(taps)], dim=1)


def adaptive_filter_reference(x: torch.Tensor, taps: torch.Tensor, dim: int, padding: str = "replicate",
                              normalize: bool = True) -> torch.Tensor:
    """Filter x (B, C, H, W) along `dim` with per-voxel taps (B, K, C, H, W).

    Arguments are assumed valid (see dhif.ops.adaptive_filter, which checks them).
    """
    axis = dim % 4
    if normalize:
        taps = F.normalize(taps, dim=1)
    if x.numel() == 0:
        return (taps * x.unsqueeze(1)).sum(dim=1)
    return (taps * shifted_stack(x, axis, taps.shape[1], padding)).sum(dim=1)
