"""The fused spatio-spectral filter against the stack-and-sum reference and against
torch.compile of the reference (inductor: C++ loops on the CPU, Triton on a GPU), what a
user would write instead: time, achieved bandwidth and extra peak memory, forward and
forward + backward, CPU and CUDA.

    pytest benchmarks/bench_adaptive_filter.py --benchmark-json results.json
"""
import functools

import pytest
import torch

from dhif.ops import available_impls, spatio_spectral_filter

from measure import (COPY_MEGABYTES, TINY, copy_bandwidth, cpu_peak_extra_in_fresh_process, cuda_peak_extra,
                     filter_bytes, synchronize)

CASES = {"train_batch": (4, 31, 96, 96), "cave_image": (1, 31, 512, 512)}
if TINY:
    CASES = {"train_batch": (2, 31, 16, 16), "cave_image": (1, 31, 32, 32)}
PASSES = ["forward", "forward_backward"]
IMPLS = ["fused", "reference", "compiled_reference"]


def make_inputs(shape, device, requires_grad):
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=generator).to(device).requires_grad_(requires_grad)
    taps = [torch.randn(shape[0], 7, *shape[1:], generator=generator).to(device).requires_grad_(requires_grad)
            for _ in range(3)]
    return x, taps


def filter_fn(impl, dynamic=False):
    """spatio_spectral_filter with this impl; "compiled_reference" is torch.compile of the
    reference (compiled on its first call, which the benchmarks' warm-up round takes)."""
    if impl == "compiled_reference":
        return torch.compile(functools.partial(spatio_spectral_filter, impl="reference"), dynamic=dynamic)
    return functools.partial(spatio_spectral_filter, impl=impl)


def step_fn(x, taps, impl, backward, fn=None):
    fn = fn or filter_fn(impl)

    def step():
        if backward:
            fn(x, *taps).sum().backward()
            for t in (x, *taps):
                t.grad = None
        else:
            with torch.no_grad():
                fn(x, *taps)
    return step


def cpu_filter_step(shape, impl, backward):
    """The step whose peak a fresh CPU process measures (see cpu_peak_extra_in_fresh_process).
    The compiled reference is compiled with dynamic shapes and warmed up on a small batch
    first, so that the compiler's own memory is not counted as the op's."""
    fn = filter_fn(impl, dynamic=True)
    if impl == "compiled_reference":
        step_fn(*make_inputs((2, shape[1], 24, 24), "cpu", backward), impl, backward, fn)()
    return step_fn(*make_inputs(shape, "cpu", backward), impl, backward, fn)


def peak_extra(device, shape, impl, backward, step):
    if device == "cuda":
        return cuda_peak_extra(step)
    return cpu_peak_extra_in_fresh_process(cpu_filter_step, shape, impl, backward)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("case", list(CASES))
def test_spatio_spectral_filter(benchmark, device, case, pass_, impl):
    if impl != "compiled_reference" and impl not in available_impls(device):
        pytest.skip(f"{impl} unavailable on {device}")
    shape, backward = CASES[case], pass_ == "forward_backward"
    x, taps = make_inputs(shape, device, backward)
    step = step_fn(x, taps, impl, backward)

    def timed():
        step()
        synchronize(device)

    benchmark.group = f"{device} {case} {pass_}"
    slow = device == "cpu" and (case == "cave_image" or impl == "reference")
    benchmark.pedantic(timed, rounds=3 if slow else 20, warmup_rounds=1)
    moved = filter_bytes(shape, 4, backward=False) + (filter_bytes(shape, 4, backward=True) if backward else 0)
    median = benchmark.stats.stats.median
    benchmark.extra_info.update(device=device, case=case, shape=list(shape), pass_=pass_, impl=impl,
                                bytes=moved, gbps=moved / median / 1e9,
                                peak_extra_bytes=peak_extra(device, shape, impl, backward, step))


def test_copy_bandwidth(benchmark, device):
    """The yardstick: a 400 MB tensor copy, bytes read plus written."""
    benchmark.group = f"{device} copy"
    result = benchmark.pedantic(lambda: copy_bandwidth(device, COPY_MEGABYTES, 5), rounds=1, iterations=1)
    benchmark.extra_info.update(device=device, gbps=result)
