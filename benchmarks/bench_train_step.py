"""DHIF-Net with the fused filter against the reference: a training step at the paper's
configuration, whole-image inference, and the largest batch that fits a memory budget.

    pytest benchmarks/bench_train_step.py --benchmark-json train.json

Three variants of the network: "fused" (the default fast path: fused filter, taps
recomputed in the backward), "fused-keep-taps" (the fused filter alone, taps kept like
the authors' code keeps them) and "reference". float32 always; bf16 autocast where the
device has native bf16; torch.compile on the GPU. CPU peak memory is the RSS growth of
the first step in a fresh process (the allocator keeps freed memory).
"""
import functools

import pytest
import torch
import torch.nn.functional as F

from dhif.inference import reconstruct_image
from dhif.models import DHIFNet
from dhif.ops import available_impls
from dhif.devices import has_native_bf16
from dhif.training import train_step

from measure import TINY, cpu_peak_extra_in_fresh_process, cuda_peak_extra, synchronize

PAPER = dict(hsi_channels=31, msi_channels=3, scale=8, stages=4)
BATCH, PATCH = 4, 96
IMAGE, TILE = 512, 256  # whole-image inference
if TINY:
    PAPER.update(stages=1, width=4, head_width=8)
    BATCH, PATCH, IMAGE, TILE = 1, 32, 64, 32
MEMORY_BUDGET = 8 * 2 ** 30
# variant -> DHIFNet keyword arguments
VARIANTS = {"fused": dict(filter_impl="fused"),
            "fused-keep-taps": dict(filter_impl="fused", recompute_taps=False),
            "reference": dict(filter_impl="reference")}


def make_model(variant, device):
    torch.manual_seed(0)
    return DHIFNet(**PAPER, **VARIANTS[variant]).to(device)


def skip_unavailable(variant, device):
    if VARIANTS[variant]["filter_impl"] not in available_impls(device):
        pytest.skip(f"{variant} unavailable on {device}")


def batch_inputs(batch, size, device):
    generator = torch.Generator().manual_seed(0)
    hr = torch.rand(batch, 31, size, size, generator=generator)
    lr = F.avg_pool2d(hr, 8)
    msi = torch.rand(batch, 3, size, size, generator=generator)
    return lr.to(device), msi.to(device), hr.to(device)


def training_step(model, optimizer, lr, msi, hr, bf16=False):
    return functools.partial(train_step, model, optimizer, lr, msi, hr, bf16)


def cpu_training_step(variant, batch, bf16):
    """The step whose peak a fresh CPU process measures (see cpu_peak_extra_in_fresh_process)."""
    model = make_model(variant, "cpu")
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    return training_step(model, optimizer, *batch_inputs(batch, PATCH, "cpu"), bf16=bf16)


def inference(model, lr, msi, tile):
    def run():
        with torch.no_grad():
            reconstruct_image(model, lr, msi, tile)
    return run


def cpu_inference(impl, tile):
    lr, msi, _ = batch_inputs(1, IMAGE, "cpu")
    return inference(make_model(impl, "cpu").eval(), lr, msi, tile)


def train_peak(device, variant, batch, model=None, optimizer=None, inputs=None, bf16=False):
    if device == "cuda":
        return cuda_peak_extra(training_step(model, optimizer, *inputs, bf16=bf16))
    return cpu_peak_extra_in_fresh_process(cpu_training_step, variant, batch, bf16)


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_training_step(benchmark, device, variant, precision, compiled):
    skip_unavailable(variant, device)
    if precision == "bf16" and not has_native_bf16(torch.device(device)):
        pytest.skip(f"no native bf16 on this {device}")
    if device == "cpu" and compiled:
        pytest.skip("torch.compile is measured on the GPU")
    model = make_model(variant, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
    inputs = batch_inputs(BATCH, PATCH, device)
    forward = torch.compile(model) if compiled else model
    step = training_step(forward, optimizer, *inputs, bf16=precision == "bf16")

    def timed():
        step()
        synchronize(device)

    benchmark.group = f"{device} train step {precision} {'compiled' if compiled else 'eager'}"
    benchmark.pedantic(timed, rounds=2 if device == "cpu" else 10, warmup_rounds=1 if device == "cpu" else 3)
    peak = train_peak(device, variant, BATCH, forward, optimizer, inputs, precision == "bf16")
    benchmark.extra_info.update(device=device, kind="train_step", impl=variant, precision=precision,
                                compiled=compiled, batch=BATCH, patch=PATCH, peak_extra_bytes=peak)


@pytest.mark.parametrize("tile", [None, TILE], ids=["whole", f"tiled{TILE}"])
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_inference_512(benchmark, device, impl, tile):
    skip_unavailable(impl, device)
    model = make_model(impl, device).eval()
    lr, msi, _ = batch_inputs(1, IMAGE, device)

    infer = inference(model, lr, msi, tile)

    def run():
        infer()
        synchronize(device)

    benchmark.group = f"{device} inference 512x512"
    benchmark.pedantic(run, rounds=1 if device == "cpu" else 5, warmup_rounds=0 if device == "cpu" else 1)
    if device == "cuda":
        peak = cuda_peak_extra(run)
    else:
        peak = cpu_peak_extra_in_fresh_process(cpu_inference, impl, tile)
    benchmark.extra_info.update(device=device, kind="inference", impl=impl, tile=tile, peak_extra_bytes=peak)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_largest_batch_in_budget(benchmark, device, variant):
    """Peak training memory is affine in the batch: measured at batch 1 and 2, the largest
    batch of 96 x 96 patches within MEMORY_BUDGET follows."""
    skip_unavailable(variant, device)
    peaks = {}
    for batch in (1, 2):
        model = optimizer = inputs = None
        if device == "cuda":
            model = make_model(variant, device)
            optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)
            inputs = batch_inputs(batch, PATCH, device)
            training_step(model, optimizer, *inputs)()  # optimizer state allocated outside the measurement
        peaks[batch] = train_peak(device, variant, batch, model, optimizer, inputs)
    per_sample = peaks[2] - peaks[1]
    largest = int((MEMORY_BUDGET - (peaks[1] - per_sample)) // per_sample)
    benchmark.group = f"{device} largest batch in {MEMORY_BUDGET / 2 ** 30:.0f} GiB"
    benchmark.pedantic(lambda: None, rounds=1)
    benchmark.extra_info.update(device=device, kind="largest_batch", impl=variant, per_sample_bytes=per_sample,
                                fixed_bytes=peaks[1] - per_sample, largest_batch=largest,
                                budget_bytes=MEMORY_BUDGET)
