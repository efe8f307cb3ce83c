"""DHIFNet: parameter counts, shapes, generalisations, validation, and equality with the
authors' network restated from the spec."""
import math

import pytest
import torch

from dhif.models import DHIFNet, ModelConfig, convert_original_state_dict, infer_config, load_original_checkpoint
from dhif.ops import available_impls
from dhif.profiling import saved_tensor_bytes

from authors_format import authors_forward, authors_shapes, authors_state_dict, pickled_authors_model
from helpers import require_fused


def count(model):
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("scale,expected", [(8, 22_669_489), (16, 22_531_167)])
def test_reference_parameter_count(scale, expected):
    assert count(DHIFNet(scale=scale)) == expected
    shapes = authors_shapes(sf=scale)
    assert sum(torch.Size(s).numel() for s in shapes.values()) == expected


@pytest.mark.parametrize("scale", range(2, 33))
def test_shapes_for_every_scale(scale):
    model = DHIFNet(hsi_channels=5, msi_channels=4, scale=scale, stages=2, width=4, head_width=8)
    lr, msi = torch.rand(2, 5, 2, 3), torch.rand(2, 4, 2 * scale, 3 * scale)
    out = model(lr, msi)
    assert out.shape == (2, 5, 2 * scale, 3 * scale)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("stages", [1, 3, 6])
def test_dense_connections_grow_with_stages(stages):
    model = DHIFNet(hsi_channels=4, stages=stages, width=8, head_width=8)
    assert [conv.in_channels for conv in model.dense] == [8 * (t + 1) for t in range(stages)]
    assert model.eta.shape == model.lam.shape == (stages,)
    assert model(torch.rand(1, 4, 2, 2), torch.rand(1, 3, 16, 16)).shape == (1, 4, 16, 16)


def test_sizes_the_unet_cannot_divide_are_padded_and_cropped():
    model = DHIFNet(hsi_channels=6, scale=4, stages=1, width=4, head_width=8)
    lr, msi = torch.rand(1, 6, 5, 7), torch.rand(1, 3, 20, 28)
    out = model(lr, msi)
    assert out.shape == (1, 6, 20, 28)
    # The crop keeps the top-left: the same pixels come out of a larger, divisible input.
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("lr_shape,msi_shape,match", [
    ((1, 30, 4, 4), (1, 3, 32, 32), "bands"),
    ((1, 31, 4, 4), (1, 4, 32, 32), "bands"),
    ((1, 31, 4, 4), (1, 3, 16, 32), "times the scale"),
    ((2, 31, 4, 4), (1, 3, 32, 32), "batch"),
    ((31, 4, 4), (1, 3, 32, 32), "4-D"),
])
def test_bad_inputs_are_refused(lr_shape, msi_shape, match):
    model = DHIFNet(width=4, stages=1, head_width=8)
    with pytest.raises(ValueError, match=match):
        model(torch.rand(lr_shape), torch.rand(msi_shape))


def test_bad_configuration_is_refused():
    for scale in (1, 33, 2.5):
        with pytest.raises(ValueError, match="scale must be an integer from 2 to 32"):
            DHIFNet(scale=scale)
    with pytest.raises(ValueError, match="odd"):
        DHIFNet(taps=4)


@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("scale", [8, 16])
def test_same_function_as_the_authors_network(impl, scale):
    """Converted authors' weights in DHIFNet give the authors' output (float64)."""
    if impl == "fused":
        require_fused("cpu")
    state = authors_state_dict(sf=scale, seed=scale)
    model = DHIFNet(scale=scale, filter_impl=impl).double()
    model.load_state_dict(convert_original_state_dict(state), strict=True)
    generator = torch.Generator().manual_seed(1)
    msi = torch.rand(1, 3, 32, 32, generator=generator, dtype=torch.float64)
    lr = torch.rand(1, 31, 32 // scale, 32 // scale, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        ours = model(lr, msi)
        theirs = authors_forward(state, msi, lr, sf=scale)
    torch.testing.assert_close(ours, theirs, rtol=1e-9, atol=1e-9)


def _small_model(impl, recompute_taps, dtype=torch.float64):
    torch.manual_seed(0)
    return DHIFNet(hsi_channels=5, msi_channels=3, scale=4, stages=2, width=4, head_width=6, filter_impl=impl,
                   recompute_taps=recompute_taps).to(dtype)


def _small_batch(dtype=torch.float64):
    generator = torch.Generator().manual_seed(2)
    return (torch.rand(2, 5, 4, 4, generator=generator, dtype=dtype),
            torch.rand(2, 3, 16, 16, generator=generator, dtype=dtype))


def _gradients(model, lr, msi, forward=None):
    model.zero_grad(set_to_none=True)
    ((model if forward is None else forward)(lr, msi) ** 2).sum().backward()
    return {name: p.grad.clone() for name, p in model.named_parameters()}


@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_recomputing_taps_gives_the_same_gradients(impl):
    if impl == "fused":
        require_fused("cpu")
    lr, msi = _small_batch()
    kept, recomputed = (_gradients(_small_model(impl, flag), lr, msi) for flag in (False, True))
    assert kept.keys() == recomputed.keys()
    for name in kept:
        torch.testing.assert_close(recomputed[name], kept[name], rtol=1e-12, atol=1e-12,
                                   msg=lambda message, name=name: f"{name}: {message}")


@pytest.mark.parametrize("impl", ["reference", "fused"])
def test_recomputed_taps_are_not_kept_for_the_backward(impl):
    if impl == "fused":
        require_fused("cpu")
    lr, msi = _small_batch()
    kept, recomputed = (saved_tensor_bytes(lambda: _small_model(impl, flag)(lr, msi)) for flag in (False, True))
    taps_bytes = 2 * 3 * 7 * 5 * 16 * 16 * 8  # stages x heads x (K, C, H, W) x float64
    assert recomputed <= kept - taps_bytes


def test_taps_are_recomputed_by_default_only_with_the_fused_filter():
    assert not _small_model("reference", None)._recomputes_taps("cpu")
    assert _small_model("auto", None)._recomputes_taps("cpu") == ("fused" in available_impls("cpu"))
    assert _small_model("reference", True)._recomputes_taps("cpu")


@pytest.mark.slow
def test_recomputing_taps_compiles():
    model, (lr, msi) = _small_model("auto", True), _small_batch()
    eager = _gradients(model, lr, msi)
    compiled = _gradients(model, lr, msi, torch.compile(model, backend="aot_eager", fullgraph=True))
    for name in eager:
        torch.testing.assert_close(compiled[name], eager[name], rtol=1e-10, atol=1e-10,
                                   msg=lambda message, name=name: f"{name}: {message}")


def test_converter_maps_every_name_and_infers_the_configuration():
    state = convert_original_state_dict({"module." + k: v for k, v in authors_state_dict(sf=16).items()})
    assert infer_config(state) == ModelConfig(hsi_channels=31, msi_channels=3, scale=16, stages=4, taps=7, width=64,
                                              head_width=None)
    DHIFNet(scale=16).double().load_state_dict(state, strict=True)
    with pytest.raises(ValueError, match="unexpected parameter"):
        convert_original_state_dict({**authors_state_dict(), "extra.weight": torch.zeros(1)})
    partial = convert_original_state_dict({k: v for k, v in authors_state_dict().items() if not k.startswith("RT.")})
    with pytest.raises(ValueError, match="no parameter 'spectral_up.0.weight': it is not a complete DHIF-Net"):
        infer_config(partial)
    with pytest.raises(ValueError, match="incomplete"):
        convert_original_state_dict({k: v for k, v in authors_state_dict().items() if k != "eta_2"})


def test_pickled_authors_model_loads_without_their_code(tmp_path):
    state = authors_state_dict(dtype=torch.float32)
    path = tmp_path / "model_500.pth"
    pickled_authors_model(state, path)
    loaded = load_original_checkpoint(path)
    assert set(loaded) == set(state)
    assert all(torch.equal(loaded[k], state[k]) for k in state)


class _Exploit:
    def __reduce__(self):
        return (print, ("pickled code ran",))


def test_arbitrary_pickled_code_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pth"
    torch.save({"weights": torch.zeros(1), "payload": _Exploit()}, path)
    with pytest.raises(ValueError, match="without running pickled code"):
        load_original_checkpoint(path)
    assert "pickled code ran" not in capsys.readouterr().out


def _small_pair(dtype=torch.float32, batch=2):
    from dhif.data import degrade, spectral_response, to_msi
    from dhif.data.synthetic import synthetic_scene

    scenes = torch.stack([synthetic_scene(64, seed=s) for s in range(batch)]).to(dtype)
    return degrade(scenes, 8), to_msi(scenes, spectral_response("nikon_d700").to(dtype)), scenes


def test_component_substitution_as_the_initial_estimate():
    from dhif.baselines import Observation, component_substitution

    lr_hsi, hr_msi, scenes = _small_pair()
    model = DHIFNet(stages=1, width=8, head_width=16, initial_estimate="cs")
    start = model.initial_estimate(lr_hsi, hr_msi)
    torch.testing.assert_close(start, component_substitution(lr_hsi, hr_msi, Observation(8)))
    bicubic = DHIFNet(stages=1, width=8, head_width=16).initial_estimate(lr_hsi, hr_msi)
    assert (start - scenes).pow(2).mean() < 0.25 * (bicubic - scenes).pow(2).mean()  # a better start
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the regression stays float32 under autocast
        torch.testing.assert_close(model.initial_estimate(lr_hsi, hr_msi), start)
    # Same parameters either way: the start is not learned, so the paper's weights still load.
    assert model.state_dict().keys() == DHIFNet(stages=1, width=8, head_width=16).state_dict().keys()


def test_the_component_substitution_start_is_differentiable_in_float64():
    lr_hsi, hr_msi, _ = _small_pair(torch.float64, batch=1)
    model = DHIFNet(stages=1, width=4, head_width=4, initial_estimate="cs", filter_impl="reference").double()
    lr_hsi = lr_hsi[:, :, :4, :4].clone().requires_grad_()  # a 32 x 32 HR crop keeps gradcheck short
    hr_msi = hr_msi[:, :, :32, :32]
    assert torch.autograd.gradcheck(lambda x: model.initial_estimate(x, hr_msi), (lr_hsi,), eps=1e-6, atol=1e-5,
                                    fast_mode=True)


def test_the_cnmf_start_refuses_to_be_differentiated():
    model = DHIFNet(hsi_channels=5, scale=4, stages=1, width=4, head_width=8, initial_estimate="cnmf")
    lr, msi = torch.rand(1, 5, 4, 4), torch.rand(1, 3, 16, 16)
    assert model(lr, msi).shape == (1, 5, 16, 16)
    with pytest.raises(ValueError, match="the CNMF start is not differentiable"):
        model(lr.requires_grad_(), msi)
    with pytest.raises(ValueError, match="the CNMF start is not differentiable"):
        torch.func.grad(lambda x: model(x, msi).sum())(lr.detach())
    start = model.initial_estimate(lr.detach(), msi)
    assert torch.func.grad(lambda x: model(x, msi, start).sum())(lr.detach()).abs().sum() > 0


def test_an_initial_estimate_given_is_the_one_refined():
    torch.manual_seed(0)
    model = DHIFNet(hsi_channels=5, scale=4, stages=1, width=4, head_width=8, initial_estimate="cs")
    lr, msi = torch.rand(1, 5, 4, 4), torch.rand(1, 3, 16, 16)
    made = model.initial_estimate(lr, msi)
    torch.testing.assert_close(model(lr, msi, made), model(lr, msi))
    assert not torch.allclose(model(lr, msi, made + 0.1), model(lr, msi))
    with pytest.raises(ValueError, match=r"the initial estimate is \(1, 5, 16, 8\); expected \(1, 5, 16, 16\)"):
        model(lr, msi, made[..., :8])
    # Sizes the U-Net cannot divide: the estimate is padded with the inputs.
    assert model(torch.rand(1, 5, 5, 7), torch.rand(1, 3, 20, 28), torch.rand(1, 5, 20, 28)).shape == (1, 5, 20, 28)


def test_an_unknown_initial_estimate_is_refused():
    with pytest.raises(ValueError, match="initial_estimate must be one of bicubic, cs, cnmf, got 'gsa'"):
        DHIFNet(initial_estimate="gsa")


def test_identity_filters_leave_each_stage_to_its_data_terms_and_still_learn():
    torch.manual_seed(0)
    model = DHIFNet(hsi_channels=5, scale=4, stages=2, width=4, head_width=8)
    lr, msi = torch.rand(1, 5, 4, 4), torch.rand(1, 3, 16, 16)

    def without_prior():
        with torch.no_grad():
            lam = model.lam.clone()
            model.lam.zero_()
            out = model(lr, msi)
            model.lam.copy_(lam)
        return out

    assert not torch.allclose(model(lr, msi), without_prior())  # random filters: the prior moves z
    model.start_filters_as_identity()
    torch.testing.assert_close(model(lr, msi), without_prior())  # u = z: lambda (z - u) is zero
    model(lr, msi).square().sum().backward()
    assert all(head[-1].weight.grad.abs().sum() > 0 for head in model.filters.heads)


@pytest.mark.parametrize("scale", [2, 3, 4, 5, 7, 8, 11])
def test_physics_operators_are_the_protocols_blur_at_every_one_layer_scale(scale):
    from dhif.data import degrade, spectral_response
    from dhif.models.physics import init_observation_operators

    model = DHIFNet(scale=scale, stages=1, width=4, head_width=4).double()
    assert init_observation_operators(model, spectral_response().double())
    z = 0.2 + 0.5 * torch.rand(1, 31, 6 * scale, 6 * scale, dtype=torch.float64)
    # Away from the edges, where the layer's zero padding and the protocol's circular blur agree.
    interior = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    torch.testing.assert_close(model.spatial_down(z)[interior], degrade(z, scale)[interior])


@pytest.mark.parametrize("scale, sigma, window", [(4, 1.0, 5), (8, 1.5, 9), (4, 1.0, 3), (3, 0.8, 5)])
def test_physics_operators_hold_a_psf_of_any_window_that_the_layer_holds(scale, sigma, window):
    from dhif.data import degrade, spectral_response
    from dhif.models.physics import init_observation_operators

    model = DHIFNet(scale=scale, stages=1, width=4, head_width=4).double()
    assert init_observation_operators(model, spectral_response().double(), sigma, window)
    z = 0.2 + 0.5 * torch.rand(1, 31, 6 * scale, 6 * scale, dtype=torch.float64)
    interior = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    torch.testing.assert_close(model.spatial_down(z)[interior], degrade(z, scale, sigma, window=window)[interior])


def test_physics_operators_cut_a_psf_wider_than_the_layer_to_its_kernel():
    from dhif.data import degrade, spectral_response
    from dhif.models.physics import init_observation_operators

    model = DHIFNet(scale=4, stages=1, width=4, head_width=4).double()  # a 6 x 6 kernel
    init_observation_operators(model, spectral_response().double(), 1.0, 7)
    kernel = model.spatial_down[0].weight[0, 0]
    assert kernel.sum().item() == pytest.approx(1.0) and (kernel > 0).all()
    z = 0.2 + 0.5 * torch.rand(1, 31, 24, 24, dtype=torch.float64)
    interior = (slice(None), slice(None), slice(1, -1), slice(1, -1))
    difference = (model.spatial_down(z) - degrade(z, 4, 1.0, window=7))[interior]
    assert difference.abs().max() < 0.01 * z.max()  # a 7 x 7 Gaussian of sigma 1 keeps 96% in 6 x 6


def test_the_authors_layers_are_kept_and_other_scales_split_into_layers_of_at_most_8():
    from dhif.models import spatial_factors

    assert [spatial_factors(s) for s in (8, 16, 32)] == [[8], [4, 4], [8, 4]]
    for scale in range(2, 33):
        factors = spatial_factors(scale)
        assert math.prod(factors) == scale, scale
        assert all(f <= 8 or all(f % d for d in range(2, f)) for f in factors), scale  # a prime above 8 is one layer
