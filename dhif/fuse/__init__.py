"""`dhif fuse`: fuse a user's own LR-HSI and HR-MSI, with no ground truth.

With --checkpoint, a trained model is applied. Without one, a small DHIF-Net is trained
on the pair itself at reduced resolution (Wald's protocol): both inputs are degraded by
the scale, the network learns to recover the given LR-HSI from them, and is then applied
to the full-resolution pair. Either way the report compares it at reduced resolution with
the chosen classical baselines (bicubic upsampling and component substitution by default),
in the input's units.
"""
import dataclasses
import json
from pathlib import Path

import torch

from ..baselines import DEFAULT_BASELINES, chosen_baselines
from ..baselines.estimation import ASSUMED_SIGMA, estimate_observation
from ..checkpoint import load_checkpoint, model_from_checkpoint
from ..data import CubeFile, upsample_bicubic
from ..data.nodata import nodata_for_json
from ..data.units import clip_to_input_range, robust_peak
from ..devices import pick_device
from ..inference import reconstruct_image, resolve_tile
from ..metrics import all_metrics
from ..outputs import claim_output, write_atomic
from ..pretrained import SHIPPED_SCALES, pretrained_path
from ..quality import full_resolution_quality
from ..report import METHOD_NAMES, save_figures
from .files import CUBE_FORMATS, cube_files, output_files, write_cube
from .fit import DEFAULT_STEPS, train_on_pair, training_patch
from .pair import Pair, band_wavelengths, check_pair, pair_scale, smallest_trainable_lr
from .scores import (FULL_RESOLUTION, best_start, format_full_resolution, format_scores, full_resolution_baselines,
                     reduced_resolution, verdict)

__all__ = ["CUBE_FORMATS", "DEFAULT_STEPS", "FuseSettings", "Pair", "band_wavelengths", "check_pair", "cube_files",
           "format_scores", "fuse", "pair_scale", "reduced_resolution", "training_patch", "verdict"]


@dataclasses.dataclass
class FuseSettings:
    """How fuse() works, as `dhif fuse`'s options of the same names say."""
    checkpoint: str = None   # a trained model; None: train one on the pair itself
    scale: int = None        # None: the inputs' size ratio
    wavelengths: str = None  # START:STOP in nm or a file; None: the LR-HSI file's own
    steps: int = DEFAULT_STEPS  # of the model trained on the pair
    minutes: float = None    # a time budget instead of steps
    width: int = 16          # of the model trained on the pair: U-Net width, stages, head width
    stages: int = 2
    head_width: int = 64
    initial_estimate: str = "auto"  # its start: "bicubic", "cs", or auto (the better of them on the reduced pair)
    psf_sigma: float = None  # the PSF's sigma in HR pixels; None: estimated from the pair
    from_scratch: bool = False  # train a new model even where the pair fits a shipped one (else fine-tune that)
    tile: object = "auto"    # HR tile side, 0 (whole image) or "auto"
    overlap: int = 32
    precision: str = "fp32"
    baselines: tuple = DEFAULT_BASELINES
    save_baselines: bool = False
    format: str = None       # of the written cubes; None: Pair.output_format's choice
    overwrite: bool = False
    device: str = "auto"
    seed: int = 0


def _check_model_fits(model, lr_hsi, hr_msi, scale: int, source):
    pair = (lr_hsi.shape[0], hr_msi.shape[0], scale)
    if (model.hsi_channels, model.msi_channels, model.scale) != pair:
        raise ValueError(f"the model in {source} fuses {model.hsi_channels}-band LR-HSIs with {model.msi_channels}-"
                         f"channel HR-MSIs at x{model.scale}; this pair has {pair[0]} bands, {pair[1]} channels, "
                         f"x{scale}")


def _fit_or_load(settings: FuseSettings, model, pair: Pair, lr_hsi, hr_msi, estimate, out: Path, device) -> tuple:
    """(model, what was trained): the given model, or one trained here on the pair, started
    from settings.initial_estimate (auto: best_start's choice, said on the terminal)."""
    if model is not None:
        return with_pair_psf(model, estimate), {"trained_here": False, "checkpoint": str(settings.checkpoint),
                                                "initial_estimate_psf": "the pair's"}
    shipped = None if settings.from_scratch else _fitting_shipped_model(lr_hsi, hr_msi, pair.scale)
    if shipped is not None:
        print(f"dhif fuse: the pair fits the shipped x{pair.scale} model (31 bands, RGB): fine-tuning it on the pair "
              "at reduced resolution (--from-scratch trains a new one; --pretrained applies it unchanged)", flush=True)
        start_output = _fuse_whole(settings, with_pair_psf(model_from_checkpoint(shipped, device), estimate), lr_hsi,
                                   hr_msi, device)
        model, trained = train_on_pair(settings, lr_hsi, hr_msi, estimate, out, pair.lr_valid,
                                       load_checkpoint(shipped), start_output)
        trained["fine_tuned_from"] = f"the shipped x{pair.scale} model ({shipped.name})"
        return model, trained
    start, how = settings.initial_estimate, "given (--initial-estimate)"
    if start == "auto":
        start, psnrs = best_start(lr_hsi, hr_msi, estimate.observation(), device, pair.lr_valid)
        scores = ", ".join(f"{METHOD_NAMES[s]} {p:.2f} dB" for s, p in psnrs.items())
        how = f"auto: the better initial estimate at reduced resolution ({scores})"
        print(f"dhif fuse: the network starts from {METHOD_NAMES[start]}, the better at reduced resolution "
              f"({scores})", flush=True)
    model, trained = train_on_pair(dataclasses.replace(settings, initial_estimate=start), lr_hsi, hr_msi, estimate,
                                   out, pair.lr_valid)
    trained["initial_estimate"] = {"chosen": start, "how": how}
    return model, trained


def with_pair_psf(model, estimate):
    """The model, its weights unchanged, with its component-substitution start (if it has
    one) at the pair's PSF instead of the one it was trained with."""
    model.config = dataclasses.replace(model.config, sigma=estimate.sigma, psf_window=estimate.window)
    return model


def _fitting_shipped_model(lr_hsi, hr_msi, scale: int):
    """The shipped checkpoint that fits the pair (its band counts and scale), or None."""
    if (lr_hsi.shape[0], hr_msi.shape[0]) != (31, 3) or scale not in SHIPPED_SCALES:
        return None
    return pretrained_path(scale)


def _shipped_where_too_small(settings: FuseSettings, lr_data, msi_data) -> FuseSettings:
    """The settings, with the shipped model as the checkpoint (said in one line) where the
    pair fits one but is too small to fine-tune it at reduced resolution: a 512 x 512 CAVE
    scene at x8 or x16, the shipped models' own kind of data."""
    if settings.checkpoint or settings.from_scratch:
        return settings
    scale = pair_scale(lr_data, msi_data, settings.scale)
    shipped, smallest = _fitting_shipped_model(lr_data, msi_data, scale), smallest_trainable_lr(scale)
    if shipped is None or min(lr_data.shape[1:]) >= smallest:
        return settings
    print(f"dhif fuse: the pair fits the shipped x{scale} model (31 bands, RGB) but its LR-HSI, "
          f"{lr_data.shape[1]} x {lr_data.shape[2]} pixels, is too small to fine-tune it at reduced resolution "
          f"(at least {smallest} x {smallest}): applying it unchanged, as --pretrained does", flush=True)
    return dataclasses.replace(settings, checkpoint=str(shipped))


def _fuse_whole(settings: FuseSettings, model, lr_hsi, hr_msi, device) -> torch.Tensor:
    """The fused (C, H, W) cube of the normalised inputs, in tiles where the budget says."""
    lr_input, msi_input = lr_hsi[None].to(device), hr_msi[None].to(device)
    tile, note = resolve_tile(settings.tile, model, lr_input, msi_input, settings.precision)
    if note:
        print(f"dhif fuse: {note}", flush=True)
    return reconstruct_image(model, lr_input, msi_input, tile, settings.overlap, progress=True,
                             precision=settings.precision).cpu()[0]


def _report(pair: Pair, cube_format: str, factors, wavelengths, trained, scores, baselines, seconds, fused,
            estimate, quality, truth_scores) -> dict:
    scale, georeference = pair.scale, pair.georeference()
    return {
        "inputs": {"lr_hsi": pair.lr.describe(), "hr_msi": pair.msi.describe()},
        "scale": scale,
        "units": {"lr_hsi_peak": factors[0], "hr_msi_peak": factors[1], "values": pair.lr.units,
                  "how": "the network saw each input divided by its peak (the 99.9th percentile of |value| over "
                         "the pixels with data); the fused cube is multiplied back by the LR-HSI's: it is in the "
                         "LR-HSI's units, clipped at 0 where the inputs have no negative values and never above"},
        "wavelengths_nm": None if wavelengths is None else [round(float(w), 3) for w in wavelengths],
        "model": trained,
        "reduced_resolution": {**scores, "protocol": f"Wald: both inputs degraded x{scale}, the LR-HSI as the truth; "
                               "PSNR with the LR-HSI's maximum as peak; pixels without data left out" + (
                                   "; the network was trained on this reduced pair, so its score is also how well "
                                   "it fits it" if trained["trained_here"] else "")},
        "observation": estimate.describe(),
        "baselines": {"methods": list(baselines), "seconds_full_resolution": seconds,
                      "full_resolution": estimate.observation().describe()},
        "full_resolution": {**quality, "meaning": FULL_RESOLUTION},
        "truth": truth_scores,
        "hr_msi_empty_region": pair.describe_empty(),
        "output": {"files": list(cube_files("fused", cube_format)), "format": cube_format, "layout": pair.lr.layout,
                   "shape_chw": list(fused.shape), "units": "the LR-HSI's",
                   "georeference": georeference and georeference.describe(),
                   "nodata": None if pair.hr_valid is None else nodata_for_json(pair.nodata()),
                   "pixels_without_data": 0 if pair.hr_valid is None else int((~pair.hr_valid).sum())},
    }


def _scaled_inputs(pair: Pair) -> tuple:
    """(factors, LR-HSI, HR-MSI): each input divided by its factor, its robust peak over the
    pixels with data, as the network sees it; results are multiplied back."""
    factors = robust_peak(pair.lr.valid_values()), robust_peak(pair.msi.valid_values())
    return factors, (pair.lr.data.double() / factors[0]).float(), (pair.msi.data.double() / factors[1]).float()


def _check_truth(truth_file: CubeFile, lr_data, msi_data) -> torch.Tensor:
    """The reference cube (C, H, W) as float, or a one-line ValueError where it does not
    have the LR-HSI's bands at the HR-MSI's size."""
    expected = (lr_data.shape[0], *msi_data.shape[1:])
    if tuple(truth_file.data.shape) != expected:
        raise ValueError(f"--truth {truth_file.path} is {' x '.join(map(str, truth_file.data.shape))}; the fused "
                         f"cube will be {' x '.join(map(str, expected))} (the LR-HSI's bands at the HR-MSI's size)")
    return truth_file.data.float()


def _estimated_observation(pair: Pair, lr_hsi, hr_msi, psf_sigma):
    estimate = estimate_observation(lr_hsi, hr_msi, pair.scale, pair.lr_valid, psf_sigma)
    assumed = (estimate.sigma, estimate.window) == (ASSUMED_SIGMA, pair.scale)  # found, given or kept: no comparison
    print(f"dhif fuse: PSF {estimate.how}: Gaussian, sigma {estimate.sigma:.3g} HR pixels over {estimate.window} x "
          f"{estimate.window}; the response fitted for it leaves {100 * estimate.residual:.2f}% of the degraded "
          "HR-MSI unexplained" + ("" if assumed else f" ({100 * estimate.assumed_residual:.2f}% with the assumed "
                                  f"sigma 2 over {pair.scale} x {pair.scale})"), flush=True)
    if estimate.at_limit:
        print(f"dhif fuse: warning: the fit wants the widest PSF searched (sigma = the scale): a Gaussian PSF and a "
              "linear response do not explain this pair well (misregistration, different acquisition times or "
              "sensors' noise), and the protocol's PSF is kept; give --psf-sigma where you know the sensor's",
              flush=True)
    return estimate


def _fill_empty(pair: Pair, cubes: dict, lr_data) -> dict:
    """Every cube with the LR-HSI upsampled (bicubic) where the HR-MSI is a masked region."""
    if pair.msi_empty is None:
        return cubes
    upsampled = clip_to_input_range(upsample_bicubic(lr_data[None], pair.scale)[0], lr_data, pair.msi.data)
    return {m: torch.where(pair.msi_empty, upsampled, cube) for m, cube in cubes.items()}


def _scored_pixels(pair: Pair):
    """(H, W) pixels of the full-resolution scores: with data, outside a masked region."""
    if pair.msi_empty is None:
        return pair.hr_valid
    return ~pair.msi_empty if pair.hr_valid is None else pair.hr_valid & ~pair.msi_empty


def fuse(lr_file: CubeFile, msi_file: CubeFile, settings: FuseSettings, out, truth_file: CubeFile = None) -> dict:
    """Fuses a user's LR-HSI and HR-MSI (load_cube's CubeFiles) into the folder `out`:
    the fused cube in the LR-HSI's units, the chosen baselines, figures and report.json,
    which it returns. truth_file: a reference cube that every method is scored against."""
    settings = _shipped_where_too_small(settings, lr_file.data, msi_file.data)
    pair = check_pair(lr_file, msi_file, settings.scale, trains_here=not settings.checkpoint)
    lr_data, msi_data, scale = pair.lr.data.float(), pair.msi.data.float(), pair.scale
    truth = _check_truth(truth_file, lr_data, msi_data) if truth_file is not None else None
    baselines = chosen_baselines(settings.baselines)
    wavelengths = band_wavelengths(settings.wavelengths, pair.lr)
    cube_format = pair.output_format(settings.format)
    device = pick_device(settings.device)
    model = model_from_checkpoint(settings.checkpoint, device) if settings.checkpoint else None
    if model is not None:
        _check_model_fits(model, lr_data, msi_data, scale, settings.checkpoint)
    out = Path(out)
    claim_output(out, output_files(cube_format), settings.overwrite)
    factors, lr_hsi, hr_msi = _scaled_inputs(pair)
    estimate = _estimated_observation(pair, lr_hsi, hr_msi, settings.psf_sigma)
    observation = estimate.observation()
    model, trained = _fit_or_load(settings, model, pair, lr_hsi, hr_msi, estimate, out, device)
    scores = reduced_resolution(model, lr_hsi, hr_msi, observation, device, settings.tile, settings.overlap,
                                settings.precision, baselines, pair.lr_valid)
    fused = _fuse_whole(settings, model, lr_hsi, hr_msi, device)
    fused = clip_to_input_range((fused.double() * factors[0]).float(), lr_data, msi_data)
    cubes, seconds = full_resolution_baselines(lr_data, msi_data, observation, device, baselines)
    results = _fill_empty(pair, {"dhif": fused, **cubes}, lr_data)
    scored = _scored_pixels(pair)
    quality = {m: full_resolution_quality(cube.double() / factors[0], lr_hsi, hr_msi, observation, estimate.srf,
                                          scored, pair.lr_valid) for m, cube in results.items()}
    truth_scores = None if truth is None else {
        m: all_metrics(cube[None], truth[None], scale, data_range=None, valid=scored) for m, cube in results.items()}
    for method, cube in results.items():
        if method == "dhif" or settings.save_baselines:
            write_cube(out, "fused" if method == "dhif" else method, cube, cube_format, pair, wavelengths)
    save_figures(out, "fused", None, {m: c.numpy() for m, c in results.items()},
                 inputs={"LR-HSI (input)": lr_data.numpy(), "HR-MSI (input)": msi_data.numpy()},
                 wavelengths=wavelengths)
    report = _report(pair, cube_format, factors, wavelengths, trained, scores, baselines, seconds, results["dhif"],
                     estimate, quality, truth_scores)
    write_atomic(out / "report.json", json.dumps(report, indent=2, allow_nan=False))
    print(format_scores(scores))
    print(format_full_resolution(quality, truth_scores))
    shape = tuple(fused.shape) if pair.lr.layout == "chw" else tuple(fused.permute(1, 2, 0).shape)
    print(f"fused cube {' x '.join(map(str, shape))} ({pair.lr.layout}, as the LR-HSI, in its units: "
          f"{' + '.join(cube_files('fused', cube_format))}) and figures in {out}/; everything above in "
          f"{out / 'report.json'}")
    print(verdict(scores, trained, scale, min(lr_hsi.shape[1:]) // scale, cube_format))
    return report
