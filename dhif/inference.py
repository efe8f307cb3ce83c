"""Whole-image inference with a trained model, optionally in overlapping tiles."""
import torch
from tqdm import tqdm


def _tile_starts(size: int, tile: int, step: int, align: int) -> list:
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted({s - s % align for s in starts})


def _blend_window(length: int, overlap: int, dtype, device) -> torch.Tensor:
    """1 inside, linear ramps over `overlap` pixels at both ends: neighbouring tiles cross-fade."""
    position = torch.arange(length, dtype=dtype, device=device)
    ramp = torch.minimum(position + 1, length - position) / (overlap + 1)
    return ramp.clamp(max=1.0)


@torch.no_grad()
def reconstruct_image(model, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, tile: int = None, overlap: int = 32,
               progress: bool = False) -> torch.Tensor:
    """The HR-HSI (B, C, H, W) from (B, C, h, w) and (B, m, H, W). With `tile` (HR pixels), the
    image is processed in overlapping tiles whose outputs are cross-faded, which bounds
    memory on large images."""
    scale = model.scale
    height, width = hr_msi.shape[2:]
    if tile is None or (tile >= height and tile >= width):
        return model(lr_hsi, hr_msi)
    if tile % scale or overlap % scale:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of the scale ({scale})")
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    out = hr_msi.new_zeros(lr_hsi.shape[0], lr_hsi.shape[1], height, width)
    weight = hr_msi.new_zeros(1, 1, height, width)
    tiles = [(top, left) for top in _tile_starts(height, tile, tile - overlap, scale)
             for left in _tile_starts(width, tile, tile - overlap, scale)]
    for top, left in tqdm(tiles, desc="tiles", disable=not progress, leave=False):
        th, tw = min(tile, height - top), min(tile, width - left)
        piece = model(lr_hsi[..., top // scale:(top + th) // scale, left // scale:(left + tw) // scale],
                      hr_msi[..., top:top + th, left:left + tw])
        w = torch.outer(_blend_window(th, overlap, out.dtype, out.device),
                        _blend_window(tw, overlap, out.dtype, out.device))[None, None]
        out[..., top:top + th, left:left + tw] += piece * w
        weight[..., top:top + th, left:left + tw] += w
    return out / weight
