"""The fused adaptive-filter kernels against the pure-PyTorch reference."""
import os
import re
import subprocess
import sys
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dhif.ops as ops
from dhif.ops import adaptive_filter, adaptive_filter_reference, available_impls, build_info, spatio_spectral_filter

from helpers import (DEVICES, FLOAT_DTYPES, assert_matches_reference, make_inputs, reference_outputs, require_fused,
                     with_layout)

AXES = [1, 2, 3]
PADDINGS = ["replicate", "zeros"]


# ----------------------------------------------------------------------------- equality


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("device", DEVICES)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    batch=st.integers(1, 3),
    channels=st.integers(1, 6),
    height=st.sampled_from([1, 2, 3, 5, 8]),
    width=st.sampled_from([1, 2, 3, 6, 9]),
    taps=st.sampled_from([1, 3, 5, 7, 9]),
    dim=st.sampled_from([1, 2, 3, -1, -2, -3]),
    padding=st.sampled_from(PADDINGS),
    normalize=st.booleans(),
    layout=st.sampled_from(["contiguous", "slice", "channels_last"]),
    seed=st.integers(0, 2**16),
)
def test_fused_matches_reference(device, dtype, batch, channels, height, width, taps, dim, padding, normalize,
                                 layout, seed):
    require_fused(device)
    x, t = make_inputs((batch, channels, height, width), taps, dtype, device, seed)
    x, t = with_layout(x, layout).requires_grad_(), with_layout(t, layout).requires_grad_()
    y = adaptive_filter(x, t, dim, padding, normalize, impl="fused")
    grad_y = torch.randn_like(y)
    gx, gt = torch.autograd.grad(y, (x, t), grad_y)
    assert y.dtype == dtype and y.shape == x.shape
    assert_matches_reference(y, gx, gt, x, t, grad_y, dim, padding, normalize)


# Shapes that the CPU kernels' blocking cares about: rows of several vectors ending in a
# partial one (W = 37), rows of whole vectors (16, 32), bands rows cut into 512-voxel
# chunks with a partial last chunk (24 x 37 = 888), axes shorter than K.
ROW_SHAPES = [(1, 9, 24, 37), (2, 11, 3, 32), (1, 4, 2, 16), (2, 3, 40, 1)]


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=str)
@pytest.mark.parametrize("shape", ROW_SHAPES, ids=str)
@pytest.mark.parametrize("dim", AXES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_fused_matches_reference_on_long_rows(fused_device, dtype, shape, dim, padding):
    x, t = make_inputs(shape, 7, dtype, fused_device, seed=sum(shape) + dim)
    x, t = x.requires_grad_(), t.requires_grad_()
    y = adaptive_filter(x, t, dim, padding, impl="fused")
    grad_y = torch.randn_like(y)
    gx, gt = torch.autograd.grad(y, (x, t), grad_y)
    assert_matches_reference(y, gx, gt, x, t, grad_y, dim, padding, True)


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_spatio_spectral_filter_is_three_passes(fused_device, impl):
    x, _ = make_inputs((2, 5, 6, 7), 7, torch.float64, fused_device)
    taps = [make_inputs((2, 5, 6, 7), 7, torch.float64, fused_device, seed=s)[1] for s in (1, 2, 3)]
    expected = adaptive_filter_reference(x, taps[0], 3, "replicate")
    expected = adaptive_filter_reference(expected, taps[1], 2, "replicate")
    expected = adaptive_filter_reference(expected, taps[2], 1, "zeros")
    torch.testing.assert_close(spatio_spectral_filter(x, *taps, impl=impl), expected, rtol=1e-12, atol=1e-12)


def test_reference_matches_authors_stack_and_sum():
    """The out-of-place reference equals the authors' pad, stack, multiply, sum."""
    x, t = make_inputs((2, 4, 5, 6), 7, torch.float64, "cpu")
    u = torch.nn.functional.normalize(t, dim=1)
    padded = torch.nn.functional.pad(x, [3, 3, 0, 0], mode="replicate")
    columns = (u * torch.stack([padded[..., i:i + 6] for i in range(7)], dim=1)).sum(1)
    padded = torch.nn.functional.pad(x, [0, 0, 3, 3], mode="replicate")
    rows = (u * torch.stack([padded[:, :, i:i + 5] for i in range(7)], dim=1)).sum(1)
    padded = torch.nn.functional.pad(x, [0, 0, 0, 0, 3, 3])
    bands = (u * torch.stack([padded[:, i:i + 4] for i in range(7)], dim=1)).sum(1)
    torch.testing.assert_close(adaptive_filter_reference(x, t, 3, "replicate"), columns)
    torch.testing.assert_close(adaptive_filter_reference(x, t, 2, "replicate"), rows)
    torch.testing.assert_close(adaptive_filter_reference(x, t, 1, "zeros"), bands)


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_inputs_are_not_mutated(fused_device, impl):
    x, t = make_inputs((1, 3, 4, 5), 7, torch.float32, fused_device)
    x0, t0 = x.clone(), t.clone()
    adaptive_filter(x, t, 3, impl=impl).sum()
    assert torch.equal(x, x0) and torch.equal(t, t0)


# ----------------------------------------------------------------------------- gradients

GRADCHECK_SHAPES = [(2, 3, 4, 5), (1, 1, 1, 2), (1, 2, 2, 1), (2, 1, 1, 1)]


@pytest.mark.parametrize("shape", GRADCHECK_SHAPES, ids=str)
@pytest.mark.parametrize("taps", [3, 7])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dim", AXES)
@pytest.mark.parametrize("normalize", [True, False])
def test_gradcheck(fused_device, shape, taps, padding, dim, normalize):
    x, t = make_inputs(shape, taps, torch.float64, fused_device, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda x, t: adaptive_filter(x, t, dim, padding, normalize, impl="fused"), (x, t), fast_mode=False)


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dim", AXES)
def test_gradients_with_all_zero_tap_vectors(fused_device, padding, dim):
    """Zero taps: u = 0 and F.normalize's clamp gives dv = gu / eps. The function jumps at
    v = 0 (any finite difference leaves the clamp), so x is gradchecked with the taps fixed
    and the tap gradient is compared with the reference's analytic one."""
    x, t = make_inputs((2, 3, 4, 5), 5, torch.float64, fused_device, requires_grad=True)
    t = t.detach().clone()
    t[:, :, 1] = 0.0  # every tap of band 1
    t[0, :, :, 2, 3] = 0.0  # and of one pixel in all bands
    assert torch.autograd.gradcheck(lambda x: adaptive_filter(x, t, dim, padding, impl="fused"), (x,))
    t.requires_grad_()
    y = adaptive_filter(x, t, dim, padding, impl="fused")
    grad_y = torch.randn_like(y)
    gx, gt = torch.autograd.grad(y, (x, t), grad_y)
    _, gx_ref, gt_ref = reference_outputs(x, t, grad_y, dim, padding, True)
    torch.testing.assert_close(gx, gx_ref)
    torch.testing.assert_close(gt, gt_ref, rtol=1e-10, atol=1e-6)
    assert gt[:, :, 1].abs().max() > 1e6  # 1 / eps scale: the clamp branch was taken
    assert torch.autograd.gradcheck(lambda x, t: adaptive_filter(x, t, dim, padding, normalize=False, impl="fused"),
                                    (x, t))


@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("dim", AXES)
def test_second_derivatives(fused_device, dim, padding):
    """create_graph=True gives differentiable gradients: the issue's example against the
    reference, then gradgradcheck in float64."""
    x, t = make_inputs((1, 3, 4, 5), 5, torch.float64, fused_device, requires_grad=True)
    values = {}
    for impl in ("fused", "reference"):
        y = adaptive_filter(x, t, dim, padding, impl=impl)
        gx, = torch.autograd.grad(y.pow(2).sum(), x, create_graph=True)
        values[impl] = torch.autograd.grad(gx.sum(), (x, t))
    assert values["reference"][1].abs().max() > 0
    for fused, reference in zip(values["fused"], values["reference"]):
        torch.testing.assert_close(fused, reference)
    assert torch.autograd.gradgradcheck(lambda x, t: adaptive_filter(x, t, dim, padding, impl="fused"), (x, t))


def test_gradients_with_create_graph_count_shared_taps_once(fused_device):
    """Two passes sharing one taps tensor, differentiated with create_graph=True (the
    differentiable backward): each pass contributes its own partial derivative once."""
    x, taps = make_inputs((1, 2, 4, 5), 3, torch.float64, fused_device, seed=4)
    results = {}
    for impl in ("fused", "reference"):
        xi, ti = x.clone().requires_grad_(), taps.clone().requires_grad_()
        y = adaptive_filter(adaptive_filter(xi, ti, 2, impl=impl), ti, 3, impl=impl).sin().sum()
        results[impl] = torch.autograd.grad(y, (xi, ti), create_graph=True)
    for fused, reference in zip(results["fused"], results["reference"]):
        torch.testing.assert_close(fused, reference, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("wanted", ["x", "taps"])
def test_backward_computes_only_the_gradients_asked_for(fused_device, monkeypatch, wanted):
    x, t = make_inputs((2, 3, 4, 5), 7, torch.float64, fused_device)
    x.requires_grad_(wanted == "x")
    t.requires_grad_(wanted == "taps")
    masks = []
    backward = torch.ops.dhif.adaptive_filter_backward

    class Spy:
        def __call__(self, *args):
            masks.append(list(args[-2:]))
            return backward(*args)

    monkeypatch.setattr(torch.ops.dhif, "adaptive_filter_backward", Spy())
    y = adaptive_filter(x, t, 2, impl="fused")
    grad_y = torch.randn_like(y)
    grad, = torch.autograd.grad(y, x if wanted == "x" else t, grad_y)
    assert masks == [[wanted == "x", wanted == "taps"]]
    _, gx_ref, gt_ref = reference_outputs(x, t, grad_y, 2, "replicate", True)
    torch.testing.assert_close(grad, gx_ref if wanted == "x" else gt_ref)


def test_tap_count_beyond_int_is_refused(fused_device):
    """K is counted in an int by the kernels: a larger K is refused before any work (the
    taps are an expanded view, so nothing of that size is allocated)."""
    x = torch.zeros(1, 1, 1, 1, device=fused_device)
    t = torch.zeros(1, 1, 1, 1, 1, device=fused_device).expand(1, 2**31 + 1, 1, 1, 1)
    with pytest.raises(ValueError, match="at most"):
        adaptive_filter(x, t, 3, impl="fused")
    with pytest.raises(RuntimeError, match="at most"):
        torch.ops.dhif.adaptive_filter_forward(x, t, 3, "replicate", True)


@pytest.mark.parametrize("dim", AXES)
def test_backward_is_deterministic(fused_device, dim):
    x, t = make_inputs((2, 6, 16, 24), 7, torch.float32, fused_device, requires_grad=True)
    y = adaptive_filter(x, t, dim, impl="fused")
    grad_y = torch.randn_like(y)
    first = torch.autograd.grad(y, (x, t), grad_y, retain_graph=True)
    second = torch.autograd.grad(y, (x, t), grad_y)
    assert all(torch.equal(a, b) for a, b in zip(first, second))


# ----------------------------------------------------------------------------- torch integration


@pytest.mark.parametrize("dim,padding", [(3, "replicate"), (2, "zeros"), (1, "zeros"), (-1, "replicate")])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
def test_opcheck(fused_device, dim, padding, dtype):
    pytest.importorskip("expecttest")  # torch.library.opcheck's test utilities need it
    x, t = make_inputs((2, 3, 4, 5), 5, dtype, fused_device, requires_grad=True)
    torch.library.opcheck(torch.ops.dhif.adaptive_filter_forward.default, (x, t, dim, padding, True))
    _, inv_norm = torch.ops.dhif.adaptive_filter_forward(x, t, dim, padding, True)
    for need_grads in ((True, True), (True, False), (False, True)):
        torch.library.opcheck(torch.ops.dhif.adaptive_filter_backward.default,
                              (torch.randn_like(x), x.detach(), t.detach(), inv_norm.detach(), dim, padding, True,
                               *need_grads))


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["aot_eager", "inductor"])
def test_torch_compile_fullgraph(fused_device, backend):
    torch._dynamo.reset()

    def step(x, tw, th, tc):
        return (spatio_spectral_filter(x, tw, th, tc, impl="fused") * 2.0).sum()

    x, tw = make_inputs((2, 3, 8, 8), 7, torch.float32, fused_device, seed=1, requires_grad=True)
    th = make_inputs((2, 3, 8, 8), 7, torch.float32, fused_device, seed=2, requires_grad=True)[1]
    tc = make_inputs((2, 3, 8, 8), 7, torch.float32, fused_device, seed=3, requires_grad=True)[1]
    compiled = torch.compile(step, fullgraph=True, backend=backend)
    loss = compiled(x, tw, th, tc)
    grads = torch.autograd.grad(loss, (x, tw, th, tc))
    loss_eager = step(x, tw, th, tc)
    grads_eager = torch.autograd.grad(loss_eager, (x, tw, th, tc))
    torch.testing.assert_close(loss, loss_eager)
    for g, g_eager in zip(grads, grads_eager):
        torch.testing.assert_close(g, g_eager)


# ----------------------------------------------------------------------------- bad input

BAD_INPUTS = [
    ("wrong ndim of x", lambda d: (torch.randn(3, 4, 5, device=d), torch.randn(1, 3, 3, 4, 5, device=d), 3), "4-D"),
    ("wrong ndim of taps", lambda d: (torch.randn(1, 3, 4, 5, device=d), torch.randn(3, 3, 4, 5, device=d), 3),
     "5-D"),
    ("even K", lambda d: (torch.randn(1, 3, 4, 5, device=d), torch.randn(1, 4, 3, 4, 5, device=d), 3), "odd"),
    ("shape mismatch", lambda d: (torch.randn(1, 3, 4, 5, device=d), torch.randn(1, 3, 3, 4, 6, device=d), 3),
     "do not match"),
    ("batch mismatch", lambda d: (torch.randn(2, 3, 4, 5, device=d), torch.randn(1, 3, 3, 4, 5, device=d), 3),
     "do not match"),
    ("dim 0", lambda d: (torch.randn(1, 3, 4, 5, device=d), torch.randn(1, 3, 3, 4, 5, device=d), 0), "dim"),
    ("dim 4", lambda d: (torch.randn(1, 3, 4, 5, device=d), torch.randn(1, 3, 3, 4, 5, device=d), 4), "dim"),
    ("dim -4", lambda d: (torch.randn(1, 3, 4, 5, device=d), torch.randn(1, 3, 3, 4, 5, device=d), -4), "dim"),
    ("integer dtype", lambda d: (torch.ones(1, 3, 4, 5, dtype=torch.int32, device=d),
                                 torch.ones(1, 3, 3, 4, 5, dtype=torch.int32, device=d), 3), "floating"),
    ("mixed dtypes", lambda d: (torch.randn(1, 3, 4, 5, device=d),
                                torch.randn(1, 3, 3, 4, 5, dtype=torch.float64, device=d), 3), "same dtype"),
]


@pytest.mark.parametrize("name,make,match", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
@pytest.mark.parametrize("impl", ["auto", "fused", "reference"])
def test_bad_input_is_refused_clearly(name, make, match, impl):
    x, t, dim = make("cpu")
    with pytest.raises((ValueError, TypeError), match=match):
        adaptive_filter(x, t, dim, impl=impl)


@pytest.mark.parametrize("name,make,match", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
def test_bad_input_to_the_raw_op_is_refused_clearly(fused_device, name, make, match):
    x, t, dim = make(fused_device)
    with pytest.raises(RuntimeError, match=match):
        torch.ops.dhif.adaptive_filter_forward(x, t, dim, "replicate", True)


def _raw_forward(dim):
    return lambda x, t: torch.ops.dhif.adaptive_filter_forward(x, t, dim, "replicate", True)


def _exported(dim):
    class Forward(torch.nn.Module):
        def forward(self, x, t):
            return torch.ops.dhif.adaptive_filter_forward(x, t, dim, "replicate", True)
    return lambda x, t: torch.export.export(Forward(), (x, t))


WAYS = {"eager": _raw_forward,
        "torch.compile": lambda dim: torch.compile(_raw_forward(dim), backend="eager", fullgraph=True),
        "torch.export": _exported}


@pytest.mark.parametrize("name,make,match", BAD_INPUTS, ids=[case[0] for case in BAD_INPUTS])
@pytest.mark.parametrize("way", list(WAYS))
def test_compile_export_and_eager_refuse_a_bad_raw_call_alike(name, make, match, way):
    """The fake kernels check what the compiled kernels check: a traced call fails where an
    eager one does, naming the same problem."""
    require_fused("cpu")
    x, t, dim = make("cpu")
    torch._dynamo.reset()
    with pytest.raises((RuntimeError, ValueError, TypeError), match=match):
        WAYS[way](dim)(x, t)


def test_unknown_padding_and_impl_are_refused():
    x, t = make_inputs((1, 2, 3, 4), 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match="padding"):
        adaptive_filter(x, t, 3, padding="reflect")
    with pytest.raises(ValueError, match="impl"):
        adaptive_filter(x, t, 3, impl="triton")
    if "fused" in available_impls("cpu"):
        with pytest.raises(RuntimeError, match="padding"):
            torch.ops.dhif.adaptive_filter_forward(x, t, 3, "reflect", True)


@pytest.mark.cuda
def test_mixed_devices_are_refused():
    x, t = make_inputs((1, 2, 3, 4), 3, torch.float32, "cpu")
    with pytest.raises(ValueError, match="same device"):
        adaptive_filter(x, t.cuda(), 3)
    with pytest.raises(RuntimeError, match="same device"):
        torch.ops.dhif.adaptive_filter_forward(x, t.cuda(), 3, "replicate", True)


@pytest.mark.parametrize("dim", AXES)
@pytest.mark.parametrize("padding", PADDINGS)
def test_nan_propagates_as_in_the_reference(fused_device, dim, padding):
    x, t = make_inputs((1, 5, 6, 7), 3, torch.float64, fused_device)
    x[0, 2, 3, 4] = float("nan")
    t[0, 1, 4, 1, 1] = float("nan")
    y = adaptive_filter(x, t, dim, padding, impl="fused")
    y_ref = adaptive_filter_reference(x, t, dim, padding)
    assert torch.equal(torch.isnan(y), torch.isnan(y_ref))
    assert torch.isnan(y).any() and not torch.isnan(y).all()
    torch.testing.assert_close(y, y_ref, equal_nan=True)


@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 0, 4, 5), (1, 3, 0, 5)], ids=str)
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_empty_tensors_give_empty_results(fused_device, shape, impl):
    x, t = make_inputs(shape, 3, torch.float32, fused_device, requires_grad=True)
    for dim in AXES:
        y = adaptive_filter(x, t, dim, impl=impl)
        assert y.shape == x.shape
        gx, gt = torch.autograd.grad(y.sum(), (x, t))
        assert gx.shape == x.shape and gt.shape == t.shape


# ----------------------------------------------------------------------------- implementation choice


def test_available_impls_and_build_info():
    info = build_info()
    assert {"torch", "cuda", "openmp", "cuda_arch_list", "torch_installed"} <= set(info)
    assert available_impls("meta") == ["reference"]
    if not info["loaded"]:  # what a build that failed to load says, and that it serves nothing
        assert info["error"] and available_impls("cpu") == ["reference"]
        return
    assert available_impls("cpu") == ["reference", "fused"]
    assert info["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert info["openmp"], "built without OpenMP: at::parallel_for would run on one thread"
    assert info["cpu_capability"] in info["cpu_capabilities_built"].split()
    if torch.cuda.is_available() and info["cuda"]:
        assert "fused" in available_impls("cuda")


def test_without_the_compiled_module_everything_is_the_reference_and_fused_says_why(monkeypatch):
    from dhif.ops import checks, extension

    monkeypatch.setattr(extension, "_C", None)
    monkeypatch.setattr(extension, "LOAD_ERROR", ImportError("undefined symbol: _ZN3c104cuda9SetDeviceEab"))
    monkeypatch.setattr(checks, "_FUSED_DEVICE_TYPES", frozenset())
    info = build_info()
    assert info["loaded"] is False and "undefined symbol" in info["error"]
    assert available_impls("cpu") == ["reference"]
    assert checks.resolve_impl("reference", "cpu") == "reference"
    with pytest.warns(RuntimeWarning, match="no fused adaptive-filter kernel for cpu"):
        monkeypatch.setattr(checks, "_warned_fallback", set())
        assert checks.resolve_impl("auto", "cpu") == "reference"
    with pytest.raises(RuntimeError, match="impl='fused' is unavailable on cpu: dhif._C failed to load: undefined "
                                           "symbol.*Rebuild with"):
        checks.resolve_impl("fused", "cpu")


def test_kernels_built_for_another_torch_are_one_clear_warning(monkeypatch):
    from dhif.ops import extension

    class BuiltElsewhere:
        @staticmethod
        def build_info():
            return {"torch": "2.99.0+cu999"}

    monkeypatch.setattr(extension, "_C", BuiltElsewhere)
    with pytest.warns(RuntimeWarning, match=rf"built against torch 2\.99\.0\+cu999, but torch "
                                            rf"{re.escape(torch.__version__)} is installed: they may misbehave\. "
                                            "Rebuild them against this torch: pip install --no-build-isolation"):
        extension.check_torch_version()
    # A module that cannot load: the version the installed package pins, and the load error.
    monkeypatch.setattr(extension, "_C", None)
    monkeypatch.setattr(extension, "LOAD_ERROR", ImportError("libc10_cuda.so: cannot open shared object file"))
    monkeypatch.setattr(extension.importlib.metadata, "requires", lambda name: ["numpy", "torch==2.99.0"])
    with pytest.warns(RuntimeWarning, match=r"built against torch 2\.99\.0, .* they failed to load \(libc10_cuda"):
        extension.check_torch_version()
    assert extension.build_info()["torch"] == "2.99.0"
    monkeypatch.setattr(extension.importlib.metadata, "requires", lambda name: [f"torch=={torch.__version__}"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        extension.check_torch_version()


def _capability_allowed(name):
    """The capability that a process asking for `name` may run: ATEN_CPU_CAPABILITY=name,
    capped at what this CPU offers. ATen trusts the variable (avx512 on an AVX2-only CPU
    reports AVX512, and its kernels and dhif's would die of an illegal instruction), so the
    cap is what ATen chooses with no variable set."""
    order = ["DEFAULT", "AVX2", "AVX512"]
    code = "import torch; print(torch.backends.cpu.get_cpu_capability())"
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    offered = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                             check=True).stdout.split()[-1]
    if offered not in order or name not in order:
        return offered
    return order[min(order.index(name), order.index(offered))]


def test_cpu_kernels_follow_aten_capability():
    """The kernels built for the best capability that ATen allows run (ATEN_CPU_CAPABILITY
    lowers it, as for ATen's own kernels)."""
    require_fused("cpu")
    info = build_info()
    built = info["cpu_capabilities_built"].split()
    allowed = torch.backends.cpu.get_cpu_capability()
    order = ["DEFAULT", "AVX2", "AVX512"]
    expected = max((c for c in built if order.index(c) <= order.index(allowed)), key=order.index) \
        if allowed in order else "DEFAULT"
    assert info["cpu_capability"] == expected


@pytest.mark.slow
@pytest.mark.parametrize("capability", ["DEFAULT", "AVX2", "AVX512"])
def test_cpu_kernels_under_every_capability(capability):
    """This file's tests again, in a process whose kernels are those built for
    `capability` (each copy is compiled with its own flags and can go wrong on its own)."""
    require_fused("cpu")
    if capability not in build_info()["cpu_capabilities_built"].split():
        pytest.skip(f"dhif._C has no {capability} kernels on this platform")
    if _capability_allowed(capability) != capability:
        pytest.skip(f"this CPU does not offer {capability}")
    if build_info()["cpu_capability"] == capability:
        pytest.skip(f"{capability} is what this process runs: the rest of the suite tests it")
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-x", "-p", "no:cacheprovider",
               "-m", "not slow"]
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability.lower()}
    completed = subprocess.run(command, env=env, capture_output=True, text=True, cwd=os.path.dirname(__file__))
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    assert " passed" in completed.stdout


def test_cpu_outputs_are_whole_in_reused_memory():
    """Freed memory is reused (dhif.memory keeps it), so an output may start as the last
    tensor's bytes: blocks of every output's size filled with NaN and freed first, every
    element must still be written."""
    require_fused("cpu")
    shape = (2, 8, 64, 64)
    x, t = make_inputs(shape, 7, torch.float32, "cpu", seed=2)
    x, t = x.requires_grad_(), t.requires_grad_()
    grad_y = torch.randn(shape)
    poisoned = [torch.full(s, float("nan")) for s in (shape, shape, t.shape, shape, shape, t.shape)]
    del poisoned
    y = adaptive_filter(x, t, 2, impl="fused")
    gx, gt = torch.autograd.grad(y, (x, t), grad_y)
    assert_matches_reference(y, gx, gt, x, t, grad_y, 2, "replicate", True)


def test_fused_kernels_loaded_when_required():
    """.ci/run sets DHIF_REQUIRE_FUSED=1 so that CI cannot pass on the fallback alone."""
    if os.environ.get("DHIF_REQUIRE_FUSED") != "1":
        pytest.skip("DHIF_REQUIRE_FUSED is not set")
    assert build_info()["loaded"], build_info().get("error")
    assert "fused" in available_impls("cpu")


def test_fused_is_refused_where_unavailable():
    x = torch.empty(1, 2, 3, 4, device="meta")
    t = torch.empty(1, 3, 2, 3, 4, device="meta")
    with pytest.raises(RuntimeError, match="unavailable"):
        adaptive_filter(x, t, 3, impl="fused")


def test_auto_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(ops.checks, "_warned_fallback", set())
    x = torch.empty(1, 2, 3, 4, device="meta")
    t = torch.empty(1, 3, 2, 3, 4, device="meta")
    with pytest.warns(RuntimeWarning, match="reference"):
        adaptive_filter(x, t, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adaptive_filter(x, t, 3)


def test_force_reference_env(monkeypatch, fused_device):
    calls = []
    original = ops.adaptive_filter_reference

    def spy(*args):
        calls.append(args)
        return original(*args)

    monkeypatch.setattr(ops, "adaptive_filter_reference", spy)
    x, t = make_inputs((1, 2, 3, 4), 3, torch.float32, fused_device)
    adaptive_filter(x, t, 3)
    assert not calls
    monkeypatch.setenv("DHIF_FORCE_REFERENCE", "1")
    adaptive_filter(x, t, 3)
    assert len(calls) == 1
