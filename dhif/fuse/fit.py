"""The model that `dhif fuse` trains on the pair itself at reduced resolution (Wald's
protocol): both inputs degraded by the scale, the given LR-HSI as the target."""
import math
import time

from ..data import PairPatchDataset, crop_pair
from ..data.datasets import InterleavedDataset, corners_with_data
from ..models.config import ModelConfig
from ..training import FINE_TUNE_LR, SHORT_RUN_STEPS_PER_EPOCH, short_run_config, train

# Fine-tuning a trained model: one patch in REDUCED_SHARE is from the reduced pair (the
# LR-HSI as target), the others from the pair as given with the starting model's own
# output as target, so that it learns the pair without forgetting what it does at the scale
# it learnt (Li & Hoiem, "Learning without Forgetting", 2016). On watercolors x4 (sigma 1
# over 7 x 7) fine-tuning on the reduced pair alone scored 44.80 dB there but 43.48 against
# the truth, which the starting model had at 45.30; interleaved 1 in 4 at 2e-4: 44.49 and
# 45.05 (benchmarks/RESULTS.md).
REDUCED_SHARE = 4
# A model trained from nothing starts with identity filters, so its first output is its start
# (component substitution, usually): on Paris x2 with random filters its first epoch's loss was
# six times its last, and 400 steps ended below component substitution at reduced resolution
# (36.08 dB against 36.25); with identity filters 36.62 (benchmarks/RESULTS.md).
INIT_FILTERS = "identity"
DEFAULT_STEPS = 400  # about 5 minutes on 2 CPU cores for Houston's 48 x 128 x 128 + 3 x 512 x 512


def training_patch(lr_size: tuple, scale: int, lr_valid=None) -> int:
    """The side of the patches that a model trained on the pair learns from: multiples that
    the scale and the U-Net both divide, near 64 pixels (64 at powers of two), smaller where
    pixels without data leave no larger window; a ValueError where none is left."""
    unit = math.lcm(scale, 16)  # the U-Net divides the degraded LR-HSI by 16
    height, width = (size - size % scale for size in lr_size)
    largest = min(unit * max(1, 64 // unit), height - height % unit, width - width % unit)
    for patch in range(largest, unit - 1, -unit):
        if lr_valid is None or len(corners_with_data(lr_valid[:height, :width], scale, patch)):
            return patch
    raise ValueError(f"no {unit} x {unit} patch of the LR-HSI is free of no-data pixels: there is too little data "
                     "to train on; give a trained model (--checkpoint or --pretrained)")


def _pixels(cube) -> str:
    return f"{cube.shape[1]} x {cube.shape[2]} pixels of {cube.shape[0]} bands"


def _cropped(lr_hsi, target, scale: int) -> str:
    """What the crop to a multiple of the scale (for the degraded pair's grid) left out, if any."""
    left_out = [f"{n} {what}{'s' if n > 1 else ''}" for n, what in
                ((lr_hsi.shape[1] - target.shape[1], "row"), (lr_hsi.shape[2] - target.shape[2], "column")) if n]
    if not left_out:
        return ""
    return (f"; the LR-HSI's last {' and '.join(left_out)} are left out of training (its size must be a multiple of "
            f"the scale, {scale}; the fused cube covers the whole image)")


def train_on_pair(settings, lr_hsi, hr_msi, estimate, out, lr_valid=None, start: dict = None, start_output=None):
    """A small DHIFNet trained on (degrade(LR-HSI), degrade(HR-MSI)) -> LR-HSI, degraded by
    the pair's PSF (estimate: an ObservationEstimate of the inputs as given here), on
    patches where the LR-HSI has data (lr_valid); its R and B start as the estimate's
    response and PSF, or, with start (a checkpoint: "model" and "config"), every weight as
    that trained model's (fine-tuning, at FINE_TUNE_LR), and then start_output, that model's
    cube of this pair (C, H, W; the HR-MSI's size or less), is the target of the patches of
    the pair as given (REDUCED_SHARE). Returns (the model, what was trained)."""
    scale, observation = estimate.scale, estimate.observation()
    target, msi, valid = crop_pair(lr_hsi, hr_msi, scale, scale, lr_valid)
    low_hsi, low_msi = observation.degrade(target[None])[0], observation.degrade(msi[None])[0]
    patch = training_patch(tuple(lr_hsi.shape[1:]), scale, lr_valid)
    steps = None if settings.minutes else settings.steps or DEFAULT_STEPS  # a fixed budget unless --minutes
    model_keys = dict(hsi_channels=lr_hsi.shape[0], msi_channels=hr_msi.shape[0], stages=settings.stages,
                      width=settings.width, head_width=settings.head_width, initial_estimate=settings.initial_estimate)
    if start is not None:
        model_keys = ModelConfig.from_dict(start["config"]).network_dict()
    config = short_run_config(out / "run", steps, scale=scale, **model_keys, patch=patch,
                              lr=1e-3 if start is None else FINE_TUNE_LR, device=settings.device, sigma=estimate.sigma,
                              psf_window=estimate.window, init_operators="physics", init_filters=INIT_FILTERS,
                              seed=settings.seed,
                              time_limit=settings.minutes * 60 if settings.minutes else None)
    budget = f"{config.epochs * SHORT_RUN_STEPS_PER_EPOCH} steps" if steps else f"{settings.minutes:g} min"
    doing = "no checkpoint; training" if start is None else "fine-tuning"
    print(f"dhif fuse: {doing} {budget} on the pair at reduced resolution "
          f"({_pixels(low_hsi)} + {_pixels(low_msi)} -> {_pixels(target)})"
          + _cropped(lr_hsi, target, scale), flush=True)
    started = time.time()
    symmetric = observation.mirror_symmetric
    dataset = PairPatchDataset(low_hsi, low_msi, target, scale, patch, config.samples_per_epoch, settings.seed, valid,
                               symmetric)
    if start is not None:
        full_msi = hr_msi[:, :start_output.shape[1], :start_output.shape[2]]
        full_valid = None if lr_valid is None else lr_valid.repeat_interleave(scale, 0).repeat_interleave(scale, 1)
        dataset = InterleavedDataset(dataset, PairPatchDataset(
            lr_hsi, full_msi, start_output, scale, patch, config.samples_per_epoch, settings.seed + 1,
            full_valid, symmetric), REDUCED_SHARE)
    result = train(config, dataset, srf=estimate.srf, initial_weights=None if start is None else start["model"])
    trained = {"trained_here": True, "steps": result.epoch * SHORT_RUN_STEPS_PER_EPOCH,
               "seconds": round(time.time() - started, 1), "settings": {
                   **config.model_dict(), "patch": patch, "batch_size": config.batch_size, "lr": config.lr,
                   "seed": settings.seed}}
    if start is None:
        trained["settings"]["init_filters"] = INIT_FILTERS
    else:
        trained["settings"]["reduced_pair_share"] = f"1 patch in {REDUCED_SHARE}; the others of the pair as given, " \
                                                     "with the starting model's output as target"
    return result.model, trained
