"""Whole-image inference: tiles chosen from a memory budget, and bf16."""
import gc

import pytest
import torch

from dhif.inference import _memory_model, _memory_models, _peak_bytes, choose_tile, reconstruct_image, resolve_tile
from dhif.models import DHIFNet
from dhif.ops.extension import _C
from dhif.devices import has_native_bf16, memory_budget

MIB = 2 ** 20


@pytest.fixture(scope="module")
def model_and_image():
    torch.manual_seed(0)
    model = DHIFNet(scale=4, stages=1, width=8, head_width=16).eval()
    return model, torch.rand(1, 31, 96, 96), torch.rand(1, 3, 384, 384)


def test_the_chosen_tile_fits_the_budget(model_and_image):
    if _C is None:
        pytest.skip("CPU memory is measured by the compiled extension")
    model, lr_hsi, hr_msi = model_and_image
    whole = _peak_bytes(model, lr_hsi, hr_msi, 384, "fp32")
    assert choose_tile(model, lr_hsi, hr_msi, budget=2 * whole) is None  # the whole image fits
    budget = whole // 3
    tile = choose_tile(model, lr_hsi, hr_msi, budget=budget)
    assert tile % 64 == 0 and 64 <= tile < 384
    assert _peak_bytes(model, lr_hsi, hr_msi, tile, "fp32") <= budget
    assert _peak_bytes(model, lr_hsi, hr_msi, tile + 64, "fp32") > budget * 0.8  # not needlessly small


def test_tile_settings(model_and_image):
    model, lr_hsi, hr_msi = model_and_image
    assert resolve_tile(0, model, lr_hsi, hr_msi) == (None, None)
    assert resolve_tile(128, model, lr_hsi, hr_msi) == (128, None)
    tile, note = resolve_tile("auto", model, lr_hsi, hr_msi)
    assert "chosen for a memory budget of" in note and "--tile 0" in note
    # The auto tile is what choose_tile gives for the default budget, and the note names it.
    assert tile == choose_tile(model, lr_hsi, hr_msi, memory_budget(lr_hsi.device))
    assert ("the whole image" if tile is None else f"tiles of {tile} px") in note
    with pytest.raises(ValueError, match="multiples of the scale"):
        reconstruct_image(model, lr_hsi, hr_msi, tile=130)


def test_a_tile_measurement_belongs_to_its_model_and_goes_with_it():
    if _C is None:
        pytest.skip("CPU memory is measured by the compiled extension")
    lr_hsi, hr_msi = torch.rand(1, 31, 32, 32), torch.rand(1, 3, 128, 128)
    model = DHIFNet(scale=4, stages=1, width=4, head_width=8).eval()
    assert _memory_model(model, lr_hsi, hr_msi, "fp32") is not None and model in _memory_models
    held = len(_memory_models)
    del model
    gc.collect()
    assert len(_memory_models) == held - 1


def test_bf16_is_close_to_fp32_and_returns_float32(model_and_image, recwarn):
    model, lr_hsi, hr_msi = model_and_image
    fp32 = reconstruct_image(model, lr_hsi, hr_msi, tile=128, overlap=32)
    bf16 = reconstruct_image(model, lr_hsi, hr_msi, tile=128, overlap=32, precision="bf16")
    assert bf16.dtype == torch.float32 and not torch.equal(bf16, fp32)
    assert (bf16 - fp32).abs().max() < 0.05 * fp32.abs().max()
    slower = [w for w in recwarn if "not native" in str(w.message)]
    assert bool(slower) != has_native_bf16(torch.device("cpu"))
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        reconstruct_image(model, lr_hsi, hr_msi, precision="fp16")


def _small_model(device, initial_estimate="bicubic"):
    torch.manual_seed(0)
    model = DHIFNet(scale=4, stages=1, width=8, head_width=16, initial_estimate=initial_estimate).to(device).eval()
    return model, torch.rand(1, 31, 48, 40, device=device), torch.rand(1, 3, 192, 160, device=device)


def test_tiles_agree_with_the_whole_image_on_every_device(device):
    model, lr_hsi, hr_msi = _small_model(device)
    whole = reconstruct_image(model, lr_hsi, hr_msi)
    tiled = reconstruct_image(model, lr_hsi, hr_msi, tile=128, overlap=32)
    assert whole.device.type == tiled.device.type == device and tiled.shape == whole.shape
    # Tiles differ from the whole image only where the U-Net sees another context: near seams.
    assert (tiled - whole).abs().mean() < 0.05 * whole.abs().mean()


def test_bf16_and_the_auto_tile_on_every_device(device, recwarn):
    model, lr_hsi, hr_msi = _small_model(device, "cs")  # with the start's regression, kept in float32
    fp32 = reconstruct_image(model, lr_hsi, hr_msi)
    tile, note = resolve_tile("auto", model, lr_hsi, hr_msi, "bf16")
    bf16 = reconstruct_image(model, lr_hsi, hr_msi, tile, precision="bf16")
    assert bf16.dtype == torch.float32 and (bf16 - fp32).abs().max() < 0.05 * fp32.abs().max()
    assert "chosen for a memory budget of" in note


def test_a_training_step_on_every_device(device):
    from dhif.training import train_step

    torch.manual_seed(0)
    model = DHIFNet(scale=4, stages=1, width=8, head_width=16).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    lr_hsi, hr_msi, hr_hsi = (torch.rand(2, 31, 8, 8, device=device), torch.rand(2, 3, 32, 32, device=device),
                              torch.rand(2, 31, 32, 32, device=device))
    before = [p.detach().clone() for p in model.parameters()]
    losses = [train_step(model, optimizer, lr_hsi, hr_msi, hr_hsi).item() for _ in range(5)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    assert all(not torch.equal(b, p) for b, p in zip(before, model.parameters()) if p.grad is not None)
