"""A small CUDA workload for compute-sanitizer (memcheck, racecheck): forward and
backward of the fused filter on every axis, both paddings, K 7 (the specialised kernel)
and 3, float32 and float16, on extents that are not multiples of a warp."""
import torch

from dhif.ops import adaptive_filter

for dtype in (torch.float32, torch.float16):
    for taps in (7, 3):
        for dim in (1, 2, 3):
            for padding in ("replicate", "zeros"):
                x = torch.rand(2, 5, 9, 11, device="cuda", dtype=dtype, requires_grad=True)
                t = torch.randn(2, taps, 5, 9, 11, device="cuda", dtype=dtype, requires_grad=True)
                adaptive_filter(x, t, dim, padding, impl="fused").sum().backward()
torch.cuda.synchronize()
print("sanitizer case done")
