"""Every way PyTorch can call the filter, against the reference called the same way.

Subjects: adaptive_filter, spatio_spectral_filter and a small DHIFNet, each run with the
fused kernels and with the pure-PyTorch reference. Ways: eager, torch.compile, torch.export,
torch.func (grad, vjp, jvp, vmap, hessian), forward-mode AD, first and second derivatives,
no_grad, inference_mode, autocast, deterministic mode, strided and channels_last inputs,
threads, a forked child, CUDA graphs. Each cell must give the reference's result; the
README's table is this file's summary.
"""
import multiprocessing
import threading
import warnings

import pytest
import torch
import torch.autograd.forward_ad as fwAD
from torch import func

from dhif.models import DHIFNet
from dhif.ops import adaptive_filter, spatio_spectral_filter

from helpers import make_inputs, require_fused, with_layout


def _filter_subject(impl):
    return lambda x, taps: adaptive_filter(x, taps, 2, "replicate", True, impl)


def _three_pass_subject(impl):
    return lambda x, taps: spatio_spectral_filter(x, *taps.unbind(0), impl=impl)


def _model_subject(impl, device, dtype=torch.float64):
    torch.manual_seed(0)
    model = DHIFNet(hsi_channels=2, msi_channels=1, scale=2, stages=1, width=4, head_width=8, filter_impl=impl)
    return model.to(device=device, dtype=dtype)


def subject(name, impl, device):
    """(function of two tensors, its two inputs) for one subject and implementation."""
    if name == "adaptive_filter":
        x, taps = make_inputs((2, 3, 5, 6), 5, torch.float64, device, seed=1)
        return _filter_subject(impl), (x, taps)
    if name == "spatio_spectral_filter":
        x, taps = make_inputs((2, 3, 5, 6), 5, torch.float64, device, seed=2)
        taps = torch.stack([taps, taps.flip(1), taps.roll(1, dims=1)])
        return _three_pass_subject(impl), (x, taps)
    model = _model_subject(impl, device)
    generator = torch.Generator().manual_seed(3)
    lr_hsi = torch.rand(1, 2, 8, 8, generator=generator, dtype=torch.float64).to(device)
    hr_msi = torch.rand(1, 1, 16, 16, generator=generator, dtype=torch.float64).to(device)
    return model, (lr_hsi, hr_msi)


def _scalar(fn):
    """A smooth scalar of fn's output, whose derivatives all transforms can take."""
    return lambda *inputs: fn(*inputs).sin().sum()


def _tangents(inputs):
    generator = torch.Generator().manual_seed(7)
    return tuple(torch.randn(t.shape, generator=generator, dtype=t.dtype).to(t.device) for t in inputs)


def eager(fn, inputs):
    return fn(*inputs)


def first_derivatives(fn, inputs):
    inputs = [t.detach().requires_grad_() for t in inputs]
    return torch.autograd.grad(_scalar(fn)(*inputs), inputs)


def second_derivatives(fn, inputs):
    inputs = [t.detach().requires_grad_() for t in inputs]
    grads = torch.autograd.grad(_scalar(fn)(*inputs), inputs, create_graph=True)
    directional = sum((g * v).sum() for g, v in zip(grads, _tangents(inputs)))
    return torch.autograd.grad(directional, inputs)


def compiled(fn, inputs):
    torch._dynamo.reset()
    # The network through aot_eager: the same tracing of the op (dynamo, fake kernels,
    # AOTAutograd), without inductor generating code for every convolution (minutes here).
    backend = "aot_eager" if isinstance(fn, torch.nn.Module) else "inductor"
    return first_derivatives(torch.compile(fn, fullgraph=True, dynamic=True, backend=backend), inputs)


def exported(fn, inputs):
    module = fn if isinstance(fn, torch.nn.Module) else _AsModule(fn)
    program = torch.export.export(module, tuple(inputs))
    return program.module()(*inputs)


class _AsModule(torch.nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, *inputs):
        return self.fn(*inputs)


def func_grad(fn, inputs):
    return func.grad(_scalar(fn), argnums=(0, 1))(*inputs)


def func_vjp(fn, inputs):
    output, pullback = func.vjp(fn, *inputs)
    return (output, *pullback(_tangents([output])[0]))


def func_jvp(fn, inputs):
    return func.jvp(fn, tuple(inputs), _tangents(inputs))


def forward_ad(fn, inputs):
    with fwAD.dual_level():
        output = fn(*(fwAD.make_dual(t, v) for t, v in zip(inputs, _tangents(inputs))))
        return fwAD.unpack_dual(output)


def func_vmap(fn, inputs):
    # Two samples: the inputs and the inputs scaled; the second argument is shared.
    stacked = torch.stack([inputs[0], 0.5 * inputs[0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the per-sample fallback warns: a batching rule must serve
        return func.vmap(fn, in_dims=(0, None))(stacked, inputs[1])


def func_hessian(fn, inputs):
    return func.hessian(lambda first: _scalar(fn)(first, inputs[1]))(inputs[0])


def no_grad(fn, inputs):
    with torch.no_grad():
        return fn(*inputs)


def inference_mode(fn, inputs):
    with torch.inference_mode():
        return fn(*inputs)


def deterministic(fn, inputs):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return first_derivatives(fn, inputs)
    finally:
        torch.use_deterministic_algorithms(previous)


def strided(fn, inputs):
    return first_derivatives(fn, [with_layout(t, "slice") for t in inputs])


def channels_last(fn, inputs):
    return first_derivatives(fn, [with_layout(t, "channels_last") for t in inputs])


def threads(fn, inputs):
    """Four Python threads at once, each on its own scaled copy of the inputs."""
    results = [None] * 4

    def work(i):
        scaled = [inputs[0] * (1 + i / 4), inputs[1]]
        results[i] = first_derivatives(fn, scaled)

    workers = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [t for result in results for t in result]


def _child(fn, inputs, queue):
    torch.set_num_threads(1)  # as DataLoader workers do: GNU OpenMP's threads do not survive a fork
    # As numpy arrays: torch's queue would share tensors through the child's file descriptors.
    queue.put([t.detach().cpu().numpy() for t in first_derivatives(fn, inputs)])


def forked(fn, inputs):
    """In a process forked after the op has run here, as a DataLoader worker is."""
    first_derivatives(fn, inputs)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_child, args=(fn, inputs, queue))
    child.start()
    result = queue.get(timeout=120)
    child.join(timeout=60)
    assert child.exitcode == 0
    return [torch.from_numpy(array).to(inputs[0].device) for array in result]


WAYS = {
    "eager": eager,
    "first derivatives": first_derivatives,
    "second derivatives": second_derivatives,
    "torch.compile(fullgraph, dynamic)": compiled,
    "torch.export": exported,
    "torch.func.grad": func_grad,
    "torch.func.vjp": func_vjp,
    "torch.func.jvp": func_jvp,
    "forward-mode AD": forward_ad,
    "torch.func.vmap": func_vmap,
    "torch.func.hessian": func_hessian,
    "no_grad": no_grad,
    "inference_mode": inference_mode,
    "deterministic algorithms": deterministic,
    "strided views": strided,
    "channels_last": channels_last,
    "threads": threads,
    "forked child": forked,
}
# What the reference is run with for each way: the same way, except for compile and export,
# whose expected result is the reference run eagerly.
REFERENCE_WAY = {"torch.compile(fullgraph, dynamic)": first_derivatives, "torch.export": eager}
SUBJECTS = ["adaptive_filter", "spatio_spectral_filter", "DHIFNet"]
# Cells that take more than a few seconds or run inductor (compiling, or a per-element
# Hessian of DHIFNet): the slow tier.
SLOW = {(name, "torch.compile(fullgraph, dynamic)") for name in SUBJECTS} | {("DHIFNet", "torch.func.hessian")}
CELLS = [pytest.param(name, way, marks=[pytest.mark.slow] if (name, way) in SLOW else [], id=f"{name}-{way}")
         for name in SUBJECTS for way in WAYS]


def _flat(result):
    if isinstance(result, torch.Tensor):
        return [result]
    return [t for item in result for t in _flat(item)]


def _assert_same(actual, expected, rtol=1e-9, atol=1e-10):
    actual, expected = _flat(actual), _flat(expected)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.dtype == e.dtype and a.shape == e.shape
        torch.testing.assert_close(a, e, rtol=rtol, atol=atol)


@pytest.mark.parametrize("name, way", CELLS)
def test_way_gives_the_reference_result(name, way, device):
    require_fused(device)
    fused, inputs = subject(name, "fused", device)
    reference, _ = subject(name, "reference", device)
    actual = WAYS[way](fused, inputs)
    expected = REFERENCE_WAY.get(way, WAYS[way])(reference, inputs)
    _assert_same(actual, expected)
    # A zero tangent or gradient is what a transform the op ignores gives: never accepted.
    assert all(t.abs().sum() > 0 for t in _flat(actual))


def test_vmap_runs_the_kernels_not_the_reference(fused_device, monkeypatch):
    """The batching rule keeps torch.vmap on the compiled kernels."""
    from dhif.ops import reference

    fn, inputs = subject("adaptive_filter", "fused", fused_device)
    monkeypatch.setattr(reference, "shifted_stack", None)  # the reference would fail now
    func_vmap(fn, inputs)


AUTOCASTS = [pytest.param("cpu", torch.bfloat16, 1e-4, id="cpu-bf16"),
             pytest.param("cuda", torch.float16, 1e-3, id="cuda-fp16", marks=pytest.mark.cuda),
             pytest.param("cuda", torch.bfloat16, 1e-3, id="cuda-bf16", marks=pytest.mark.cuda)]


@pytest.mark.parametrize("device_type,dtype,tolerance", AUTOCASTS)
@pytest.mark.parametrize("name", SUBJECTS)
def test_autocast(name, device_type, dtype, tolerance):
    """Under autocast the filter runs in its inputs' dtype (it has no autocast rule): float32
    here, and float32 in the network, whose taps are cast to z's dtype."""
    require_fused(device_type)
    fused, inputs = subject(name, "fused", device_type)
    reference, _ = subject(name, "reference", device_type)
    if name == "DHIFNet":
        fused, reference = fused.float(), reference.float()
    inputs = [t.float() for t in inputs]
    with torch.autocast(device_type, dtype=dtype):
        actual, expected = fused(*inputs), reference(*inputs)
    assert actual.dtype == expected.dtype == torch.float32
    _assert_same(actual, expected, rtol=tolerance, atol=tolerance)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["adaptive_filter", "spatio_spectral_filter"])
def test_cuda_graph_capture(name):
    require_fused("cuda")
    fused, inputs = subject(name, "fused", "cuda")
    reference, _ = subject(name, "reference", "cuda")
    static = [t.clone() for t in inputs]
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        fused(*static)  # warm-up outside the capture, as CUDA graphs require
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        output = fused(*static)
    for scale in (1.0, 2.0):
        for s, t in zip(static, inputs):
            s.copy_(t * scale)
        graph.replay()
        torch.cuda.synchronize()
        _assert_same(output, reference(*static))

