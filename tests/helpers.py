"""Devices, dtypes, tolerances and data paths shared by the tests (a plain module, not
conftest, so that `pytest tests benchmarks` does not confuse two modules named conftest)."""
import os
from pathlib import Path

import pytest
import torch

from dhif.ops import adaptive_filter_reference, available_impls, build_info

# CUDA cases are collected everywhere (so that a selection such as `-m cuda` can be checked
# on a machine without a GPU) and skipped by conftest where there is no CUDA device.
DEVICES = ["cpu", "cuda"]
FLOAT_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]

# (rtol, atol) of the fused kernels against a float64 reference on the same inputs. Half
# types accumulate in float32, so the error is about one rounding of the output.
TOLERANCES = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (4e-3, 4e-3),
    torch.bfloat16: (2e-2, 2e-2),
}

# Real data: the folder DHIF_DATA names, laid out as ../shared/data beside the repository
# (cave/complete_ms_data, houston/, paris/, srf/), which is where it is looked for otherwise.
# A user's clone has none: tests that read it skip (the `shared_data` and `cave_dir` fixtures).
SHARED_DATA = Path(os.environ.get("DHIF_DATA") or Path(__file__).resolve().parents[2] / "shared" / "data")
CAVE_DIR = SHARED_DATA / "cave" / "complete_ms_data"


def require_fused(device: str) -> None:
    """Skip a fused-kernel test where no kernel is compiled, unless DHIF_REQUIRE_FUSED=1
    (set by .ci/run), in which case a missing kernel fails the test."""
    if "fused" in available_impls(device):
        return
    message = f"no fused kernel for {device}: {build_info().get('error', 'not compiled for this device')}"
    if os.environ.get("DHIF_REQUIRE_FUSED") == "1" and device == "cpu":
        pytest.fail(message)
    pytest.skip(message)


def make_inputs(shape, taps, dtype, device, seed=0, requires_grad=False):
    """Random x (B, C, H, W) and taps (B, K, C, H, W), drawn in float64 then cast."""
    generator = torch.Generator().manual_seed(seed)
    b, c, h, w = shape
    x = torch.randn(b, c, h, w, generator=generator, dtype=torch.float64)
    t = torch.randn(b, taps, c, h, w, generator=generator, dtype=torch.float64)
    x = x.to(device=device, dtype=dtype).requires_grad_(requires_grad)
    t = t.to(device=device, dtype=dtype).requires_grad_(requires_grad)
    return x, t


def with_layout(tensor, layout):
    """The same values in another memory layout: a strided slice or channels_last."""
    if layout == "slice":
        wide = torch.zeros(*tensor.shape[:-1], 2 * tensor.shape[-1], dtype=tensor.dtype, device=tensor.device)
        wide[..., ::2] = tensor
        return wide[..., ::2]
    if layout == "channels_last" and tensor.dim() == 4:
        return tensor.contiguous(memory_format=torch.channels_last)
    return tensor


def reference_outputs(x, taps, grad_y, dim, padding, normalize):
    """Output and gradients of the reference, computed in float64 from the same values."""
    x64 = x.detach().double().requires_grad_()
    t64 = taps.detach().double().requires_grad_()
    y = adaptive_filter_reference(x64, t64, dim, padding, normalize)
    gx, gt = torch.autograd.grad(y, (x64, t64), grad_y.double())
    return y, gx, gt


def assert_close(actual, expected, dtype):
    rtol, atol = TOLERANCES[dtype]
    torch.testing.assert_close(actual.double(), expected.double(), rtol=rtol, atol=atol)


def assert_matches_reference(y, grad_x, grad_taps, x, taps, grad_y, dim, padding, normalize):
    """y and both gradients of a fast path against the float64 reference on the same inputs."""
    dtype = x.dtype
    y_ref, gx_ref, gt_ref = reference_outputs(x, taps, grad_y, dim, padding, normalize)
    assert_close(y, y_ref, dtype)
    assert_close(grad_x, gx_ref, dtype)
    # The tap gradient is g / ||v|| (x_i - u_i y): rounding errors grow like |g| |x| / ||v||,
    # so it is compared in units of that, voxel by voxel.
    norm = taps.detach().double().norm(dim=1, keepdim=True).clamp_min(1e-12) if normalize else 1.0
    x_max = x.detach().double().abs().max() if x.numel() else 1.0
    scale = (grad_y.double().abs().unsqueeze(1) * x_max / norm).clamp_min(1.0)
    assert_close(grad_taps / scale, gt_ref / scale, dtype)
