"""Data units. DHIF-Net is built for values of order one (CAVE reflectance in [0, 1]);
real data arrive as reflectance x 10000, radiance or digital numbers. A cube is divided by
its robust peak before the network sees it, and every result is multiplied back, so that
outputs are in the input's units and fusing c * x gives c * (fusing x)."""
import numpy as np
import torch

PEAK_QUANTILE = 0.999   # of |value|: one hot pixel in a thousand does not set the scale
PEAK_SAMPLES = 1 << 22  # values read at most ...
PEAK_BLOCKS = 256       # ... in this many runs


def robust_peak(cube) -> float:
    """The PEAK_QUANTILE quantile of |value| of a tensor or array (its maximum where that
    quantile is 0), in float64. Proportional to the cube: robust_peak(c x) = c robust_peak(x).
    A larger cube is sampled in PEAK_BLOCKS contiguous runs spread over it, which read
    only those parts of a memory-mapped file."""
    flat = cube.reshape(-1)
    count = flat.shape[0]
    if count > PEAK_SAMPLES:
        length = PEAK_SAMPLES // PEAK_BLOCKS
        starts = np.linspace(0, count - length, PEAK_BLOCKS).astype(np.int64)
        flat = np.concatenate([np.asarray(flat[s:s + length], dtype=np.float64) for s in starts])
    sample = np.abs(np.asarray(flat, dtype=np.float64))
    peak = float(np.quantile(sample, PEAK_QUANTILE))
    return peak if peak > 0 else float(sample.max())


def check_not_constant(cube: torch.Tensor, name: str):
    """A constant cube (all zeros, a fill value, a wrong key) holds nothing to fuse."""
    low, high = float(cube.min()), float(cube.max())
    if low == high:
        raise ValueError(f"{name} has the same value ({low:g}) everywhere; check the file and the array name")


def clip_to_input_range(result: torch.Tensor, *inputs: torch.Tensor) -> torch.Tensor:
    """Results clipped at 0 where no input has a negative value (reflectance, radiance and
    counts are not negative), and never above: an upper bound would depend on the units."""
    return result.clamp(min=0) if all(float(x.min()) >= 0 for x in inputs) else result
