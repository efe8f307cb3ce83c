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

from ..baselines import DEFAULT_BASELINES, Observation, chosen_baselines
from ..checkpoint import model_from_checkpoint
from ..data import CubeFile, degrade
from ..data.nodata import nodata_for_json
from ..data.units import clip_to_input_range, robust_peak
from ..devices import pick_device
from ..inference import reconstruct_image, resolve_tile
from ..metrics import psnr_over_valid
from ..outputs import claim_output, write_atomic
from ..report import METHOD_NAMES, save_figures
from .files import CUBE_FORMATS, cube_files, output_files, write_cube
from .fit import DEFAULT_STEPS, train_on_pair, training_patch
from .pair import Pair, band_wavelengths, check_pair, pair_scale
from .scores import (ASSUMED_SIGMA, CONSISTENCY, best_start, format_scores, full_resolution_baselines,
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


def _fit_or_load(settings: FuseSettings, model, pair: Pair, lr_hsi, hr_msi, out: Path, device) -> tuple:
    """(model, what was trained): the given model, or one trained here on the pair, started
    from settings.initial_estimate (auto: best_start's choice, said on the terminal)."""
    if model is not None:
        return model, {"trained_here": False, "checkpoint": str(settings.checkpoint)}
    start, how = settings.initial_estimate, "given (--initial-estimate)"
    if start == "auto":
        start, psnrs = best_start(lr_hsi, hr_msi, pair.scale, device, pair.lr_valid)
        scores = ", ".join(f"{METHOD_NAMES[s]} {p:.2f} dB" for s, p in psnrs.items())
        how = f"auto: the better initial estimate at reduced resolution ({scores})"
        print(f"dhif fuse: the network starts from {METHOD_NAMES[start]}, the better at reduced resolution "
              f"({scores})", flush=True)
    model, trained = train_on_pair(dataclasses.replace(settings, initial_estimate=start), lr_hsi, hr_msi,
                                   pair.scale, out, pair.lr_valid)
    trained["initial_estimate"] = {"chosen": start, "how": how}
    return model, trained


def _fuse_whole(settings: FuseSettings, model, lr_hsi, hr_msi, device) -> torch.Tensor:
    """The fused (C, H, W) cube of the normalised inputs, in tiles where the budget says."""
    lr_input, msi_input = lr_hsi[None].to(device), hr_msi[None].to(device)
    tile, note = resolve_tile(settings.tile, model, lr_input, msi_input, settings.precision)
    if note:
        print(f"dhif fuse: {note}", flush=True)
    return reconstruct_image(model, lr_input, msi_input, tile, settings.overlap, progress=True,
                             precision=settings.precision).cpu()[0]


def _report(pair: Pair, cube_format: str, factors, wavelengths, trained, scores, baselines, seconds, fused,
            consistency) -> dict:
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
        "baselines": {"methods": list(baselines), "seconds_full_resolution": seconds,
                      "reduced_resolution": Observation(scale, ASSUMED_SIGMA).describe(),
                      "full_resolution": Observation(scale, ASSUMED_SIGMA, blur_known=False).describe()},
        "consistency_psnr_db": consistency, "consistency_meaning": CONSISTENCY,
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


def fuse(lr_file: CubeFile, msi_file: CubeFile, settings: FuseSettings, out) -> dict:
    """Fuses a user's LR-HSI and HR-MSI (load_cube's CubeFiles) into the folder `out`:
    the fused cube in the LR-HSI's units, the chosen baselines, figures and report.json,
    which it returns."""
    pair = check_pair(lr_file, msi_file, settings.scale, trains_here=not settings.checkpoint)
    lr_data, msi_data, scale = pair.lr.data.float(), pair.msi.data.float(), pair.scale
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
    model, trained = _fit_or_load(settings, model, pair, lr_hsi, hr_msi, out, device)
    scores = reduced_resolution(model, lr_hsi, hr_msi, scale, device, settings.tile, settings.overlap,
                                settings.precision, baselines, pair.lr_valid)
    fused = _fuse_whole(settings, model, lr_hsi, hr_msi, device)
    fused = clip_to_input_range((fused.double() * factors[0]).float(), lr_data, msi_data)
    consistency = psnr_over_valid(degrade(fused, scale)[None], lr_data[None], pair.lr_valid)
    write_cube(out, "fused", fused, cube_format, pair, wavelengths)
    cubes, seconds = full_resolution_baselines(lr_data, msi_data, scale, device, baselines)
    for method, cube in cubes.items() if settings.save_baselines else ():
        write_cube(out, method, cube, cube_format, pair, wavelengths)
    save_figures(out, "fused", None, {"dhif": fused.numpy(), **{m: c.numpy() for m, c in cubes.items()}},
                 inputs={"LR-HSI (input)": lr_data.numpy(), "HR-MSI (input)": msi_data.numpy()},
                 wavelengths=wavelengths)
    report = _report(pair, cube_format, factors, wavelengths, trained, scores, baselines, seconds, fused, consistency)
    write_atomic(out / "report.json", json.dumps(report, indent=2, allow_nan=False))
    print(format_scores(scores, consistency))
    shape = tuple(fused.shape) if pair.lr.layout == "chw" else tuple(fused.permute(1, 2, 0).shape)
    print(f"fused cube {' x '.join(map(str, shape))} ({pair.lr.layout}, as the LR-HSI, in its units: "
          f"{' + '.join(cube_files('fused', cube_format))}) and figures in {out}/; everything above in "
          f"{out / 'report.json'}")
    print(verdict(scores, trained, cube_format))
    return report
