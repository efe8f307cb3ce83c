"""The CUDA kernels, run on the CPU: csrc/cuda/'s kernel bodies and launchers compiled as host
C++ (tests/cuda_emulation/) and checked against the reference, so that a wrong index in a
kernel fails here on a machine without a GPU.

What this cannot cover: device half/bfloat16 conversions, device sqrt and division (the host
ones run here), the device guard, the stream and the launch check, shared memory, barriers
and warp operations (the kernels use none). benchmarks/gpu_check.sh runs the real kernels.

DHIF_EMULATION_SANITIZE=1 builds the emulation with AddressSanitizer and
UndefinedBehaviorSanitizer (run Python with libasan preloaded, as .ci/run does).
"""
import os
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from dhif.ops import adaptive_filter_reference

from helpers import FLOAT_DTYPES, assert_matches_reference, make_inputs, require_fused

ROOT = Path(__file__).resolve().parents[1]
SANITIZE = os.environ.get("DHIF_EMULATION_SANITIZE") == "1"


@pytest.fixture(scope="module")
def emulated():
    """The emulated kernels, compiled once per source change (torch's extension cache)."""
    from torch.utils.cpp_extension import load

    flags = ["-O1", "-g0"]
    ldflags = []
    if SANITIZE:
        sanitizers = "-fsanitize=address,undefined"
        flags += [sanitizers, "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
        ldflags += [sanitizers]
    return load(
        name="dhif_cuda_emulation" + ("_sanitized" if SANITIZE else ""),
        sources=[str(ROOT / "tests" / "cuda_emulation" / "emulated_cuda.cpp")],
        extra_include_paths=[str(ROOT / "csrc"), str(ROOT / "tests" / "cuda_emulation")],
        extra_cflags=flags, extra_ldflags=ldflags, verbose=False)


def run_emulated(emulated, x, t, grad_y, dim, padding, normalize, force_int64=False, grid_blocks=0):
    y, inv_norm = emulated.forward(x, t, dim, padding, normalize, force_int64, grid_blocks)
    grad_x, grad_taps = emulated.backward(grad_y, x, t, inv_norm, dim, padding, normalize, force_int64, grid_blocks,
                                          True, True)
    return y, inv_norm, grad_x, grad_taps


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@settings(max_examples=60, deadline=None)
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 7),
    height=st.sampled_from([1, 2, 3, 5, 8, 13]),
    width=st.sampled_from([1, 2, 3, 6, 9, 17]),
    taps=st.sampled_from([1, 3, 5, 7, 9, 11]),
    dim=st.sampled_from([1, 2, 3, -1, -2, -3]),
    padding=st.sampled_from(["replicate", "zeros"]),
    normalize=st.booleans(),
    force_int64=st.booleans(),
    grid_blocks=st.sampled_from([0, 1, 2, 3, 5]),
    seed=st.integers(0, 2**16),
)
def test_emulated_kernels_match_reference(emulated, dtype, batch, channels, height, width, taps, dim, padding,
                                          normalize, force_int64, grid_blocks, seed):
    """Small grids (1-5 blocks of 256 threads) make the grid-stride loop repeat."""
    x, t = make_inputs((batch, channels, height, width), taps, dtype, "cpu", seed)
    grad_y = torch.randn(x.shape, generator=torch.Generator().manual_seed(seed + 1)).to(dtype)
    y, inv_norm, grad_x, grad_taps = run_emulated(emulated, x, t, grad_y, dim, padding, normalize, force_int64,
                                                  grid_blocks)
    assert y.dtype == dtype and grad_taps.shape == t.shape
    assert inv_norm.dtype == (torch.float64 if dtype == torch.float64 else torch.float32)
    assert_matches_reference(y, grad_x, grad_taps, x, t, grad_y, dim, padding, normalize)


@pytest.mark.parametrize("force_int64", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 3])
@pytest.mark.parametrize("padding", ["replicate", "zeros"])
def test_emulated_kernels_equal_cpu_kernels_at_dhif_size(emulated, force_int64, dim, padding):
    """The K = 7 specialisation at a DHIF-Net-like extent, both index widths, against the
    compiled CPU kernels (same per-voxel maths, so the same float64 values)."""
    require_fused("cpu")
    x, t = make_inputs((2, 31, 12, 16), 7, torch.float64, "cpu", seed=dim)
    grad_y = torch.randn_like(x)
    y, inv_norm, grad_x, grad_taps = run_emulated(emulated, x, t, grad_y, dim, padding, True, force_int64)
    y_cpu, inv_cpu = torch.ops.dhif.adaptive_filter_forward(x, t, dim, padding, True)
    gx_cpu, gt_cpu = torch.ops.dhif.adaptive_filter_backward(grad_y, x, t, inv_cpu, dim, padding, True,
                                                             True, True)
    for emulated_value, cpu_value in ((y, y_cpu), (inv_norm, inv_cpu), (grad_x, gx_cpu), (grad_taps, gt_cpu)):
        torch.testing.assert_close(emulated_value, cpu_value, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_emulated_zero_norm_taps_and_nan(emulated, dim):
    x, t = make_inputs((1, 5, 6, 7), 5, torch.float64, "cpu")
    t[:, :, 1] = 0.0
    x[0, 3, 2, 2] = float("nan")
    grad_y = torch.randn_like(x)
    y, _, grad_x, grad_taps = run_emulated(emulated, x, t, grad_y, dim, "zeros", True)
    y_ref = adaptive_filter_reference(x, t, dim, "zeros")
    torch.testing.assert_close(y, y_ref, equal_nan=True)
    x = x.nan_to_num(0.0)
    y, _, grad_x, grad_taps = run_emulated(emulated, x, t, grad_y, dim, "zeros", True)
    assert grad_taps[:, :, 1].abs().max() > 1e6  # the 1 / eps branch of F.normalize's clamp
    assert_matches_reference(y, grad_x, grad_taps, x, t, grad_y, dim, "zeros", True)


@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 0, 4, 5), (1, 3, 4, 0)], ids=str)
def test_emulated_empty_tensors(emulated, shape):
    x, t = make_inputs(shape, 3, torch.float32, "cpu")
    y, inv_norm, grad_x, grad_taps = run_emulated(emulated, x, t, torch.zeros_like(x), 2, "replicate", True)
    assert y.shape == inv_norm.shape == grad_x.shape == x.shape and grad_taps.shape == t.shape


def test_emulated_launch_checks_its_input(emulated):
    x, t = make_inputs((1, 3, 4, 5), 4, torch.float32, "cpu")
    with pytest.raises(RuntimeError, match="odd"):
        emulated.forward(x, t, 3, "replicate", True, False, 0)


def test_index_width_choice(emulated):
    """32-bit indices exactly while the largest index plus one grid stride fits in int32."""
    module = emulated
    n = 1 << 20
    stride = module.grid_size(n) * 256
    limit = 2**31 - 1
    assert module.grid_size(n) == n // 256 and module.grid_size(1) == 1
    assert module.grid_size(1 << 40) == 1 << 20
    assert module.uses_int32(limit - stride, n)
    assert not module.uses_int32(limit - stride + 1, n)


def test_int32_divider_is_exact(emulated):
    """The int32 kernels locate voxels by multiply-and-shift division: exact over the whole
    range the launch allows (0 <= n < 2^31), checked at the edges and at random."""
    generator = torch.Generator().manual_seed(0)
    limit = 2**31 - 1
    divisors = [1, 2, 3, 7, 31, 96, 256, 9216, 285696, 2**30 - 1, 2**30, 2**30 + 1, limit]
    divisors += torch.randint(1, limit, (40,), generator=generator).tolist()
    for d in divisors:
        numerators = [0, 1, d - 1, d, d + 1, limit - 1, limit] + torch.randint(0, limit, (40,),
                                                                              generator=generator).tolist()
        for n in numerators:
            if 0 <= n <= limit:
                assert emulated.divide_int32(n, d) == n // d, (n, d)


@pytest.mark.parametrize("need_grad_x,need_grad_taps", [(True, False), (False, True), (False, False)])
def test_emulated_backward_computes_only_what_is_asked(emulated, need_grad_x, need_grad_taps):
    x, t = make_inputs((2, 3, 5, 6), 7, torch.float64, "cpu")
    grad_y = torch.randn_like(x)
    _, inv_norm, grad_x, grad_taps = run_emulated(emulated, x, t, grad_y, 2, "replicate", True)
    only_x, only_taps = emulated.backward(grad_y, x, t, inv_norm, 2, "replicate", True, False, 0, need_grad_x,
                                          need_grad_taps)
    assert only_x.numel() == (x.numel() if need_grad_x else 0)
    assert only_taps.numel() == (t.numel() if need_grad_taps else 0)
    if need_grad_x:
        assert torch.equal(only_x, grad_x)
    if need_grad_taps:
        assert torch.equal(only_taps, grad_taps)
