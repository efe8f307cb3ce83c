"""Whole-image inference with a trained model, optionally in overlapping tiles, in float32
or under bfloat16 autocast."""
import contextlib
import warnings
import weakref

import torch
from tqdm import tqdm

from .devices import has_native_bf16, memory_budget
from .memory import trim

PRECISIONS = ("fp32", "bf16")


def _precision(name: str, device: torch.device):
    """The context a forward runs in: nothing for fp32, bfloat16 autocast for bf16 (the
    convolutions in bf16; the adaptive filter, which has no autocast rule, in float32 as in
    training), with a warning where bf16 is not native and would be slower."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; expected one of {', '.join(PRECISIONS)}")
    if name == "fp32":
        return contextlib.nullcontext()
    if not has_native_bf16(device):
        warnings.warn(f"bf16 on {device} is not native here and runs slower than fp32", RuntimeWarning, stacklevel=3)
    return torch.autocast(device.type, dtype=torch.bfloat16)


def _peak_bytes(model, lr_hsi, hr_msi, pixels: int, precision: str) -> int:
    """Peak bytes of large blocks that one forward on a square HR tile of `pixels` side
    takes, measured (CUDA's allocator statistics, or dhif._C's for the CPU)."""
    from .ops.extension import _C

    device, scale = lr_hsi.device, model.scale
    lr = lr_hsi[:1, :, :pixels // scale, :pixels // scale]
    msi = hr_msi[:1, :, :pixels, :pixels]
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = torch.cuda.memory_allocated(device)
    elif _C is not None:
        _C.memory.install_stats()  # from here on, for the rest of the process (csrc/cpu/memory_stats.h)
        _C.memory.reset_peak()
        start = _C.memory.in_use()
    else:
        return None
    with torch.no_grad(), _precision(precision, device):
        model(lr, msi)
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _C.memory.peak()
    return peak - start


# model -> {(device, bands, channels, precision): (fixed bytes, bytes per HR pixel)}; weak, so
# that a model made after another was freed never inherits its measurement.
_memory_models = weakref.WeakKeyDictionary()


def _memory_model(model, lr_hsi, hr_msi, precision: str):
    """(fixed bytes, bytes per HR pixel) of a forward, from two small tiles (memory grows
    linearly with a tile's pixels), measured once per model and input kind; None where it
    cannot be measured."""
    measured = _memory_models.setdefault(model, {})
    key = (lr_hsi.device, lr_hsi.shape[1], hr_msi.shape[1], precision)
    if key not in measured:
        small, large = 8 * model.scale, 16 * model.scale
        low, high = (_peak_bytes(model, lr_hsi, hr_msi, side, precision) for side in (small, large))
        if low is None:
            return None
        per_pixel = max(high - low, 1) / (large ** 2 - small ** 2)
        measured[key] = (max(low - per_pixel * small ** 2, 0), per_pixel)
    return measured[key]


def choose_tile(model, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, budget: int = None,
                precision: str = "fp32") -> int:
    """The largest HR tile (a multiple of 16 x the scale; None: the whole image) whose
    forward fits `budget` bytes (default memory_budget). Where memory cannot be measured
    (on the CPU without the compiled extension), 256."""
    budget = budget or memory_budget(lr_hsi.device)
    height, width = hr_msi.shape[2:]
    step = 16 * model.scale
    if min(height, width) < step:
        return None
    measured = _memory_model(model, lr_hsi, hr_msi, precision)
    if measured is None:
        return 256
    fixed, per_pixel = measured
    per_pixel *= 1.1  # a tenth to spare: the measured line is within 2% of larger tiles' peaks
    if fixed + per_pixel * height * width * lr_hsi.shape[0] <= budget:
        return None
    blended = 4 * (lr_hsi.shape[1] + 1) * height * width * lr_hsi.shape[0]  # the cross-faded result and weights
    side = int(max(budget - fixed - blended, 0) / per_pixel) ** 0.5
    return max(int(side) // step * step, step)


def resolve_tile(tile, model, lr_hsi, hr_msi, precision: str = "fp32") -> tuple:
    """(tile for reconstruct_image, a line saying how it was chosen). tile: 'auto' (from the
    memory budget), 0 (the whole image) or HR pixels."""
    if tile != "auto":
        return (tile or None), None
    budget = memory_budget(lr_hsi.device)
    chosen = choose_tile(model, lr_hsi, hr_msi, budget, precision)
    what = "the whole image" if chosen is None else f"tiles of {chosen} px"
    return chosen, (f"{what}, chosen for a memory budget of {budget / 2 ** 30:.1f} GiB (--tile N sets the tile, "
                    "--tile 0 the whole image)")


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
                      progress: bool = False, precision: str = "fp32") -> torch.Tensor:
    """The HR-HSI (B, C, H, W), float32, from (B, C, h, w) and (B, m, H, W). With `tile` (HR
    pixels), the image is processed in overlapping tiles whose outputs are cross-faded,
    which bounds memory on large images; tile='auto' chooses it (resolve_tile). precision:
    'fp32' or 'bf16' (autocast)."""
    tile = resolve_tile(tile, model, lr_hsi, hr_msi, precision)[0]
    autocast = _precision(precision, lr_hsi.device)

    def forward(lr, msi):
        with autocast:
            return model(lr, msi).float()

    scale = model.scale
    height, width = hr_msi.shape[2:]
    if tile is None or (tile >= height and tile >= width):
        return forward(lr_hsi, hr_msi)
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
        piece = forward(lr_hsi[..., top // scale:(top + th) // scale, left // scale:(left + tw) // scale],
                        hr_msi[..., top:top + th, left:left + tw])
        w = torch.outer(_blend_window(th, overlap, out.dtype, out.device),
                        _blend_window(tw, overlap, out.dtype, out.device))[None, None]
        out[..., top:top + th, left:left + tw] += piece * w
        weight[..., top:top + th, left:left + tw] += w
        trim()  # one tile's scattered free pages do not add to the next one's peak
    return out / weight
