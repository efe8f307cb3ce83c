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
import math
import time
from pathlib import Path

import numpy as np
import torch

from .baselines import BASELINES, DEFAULT_BASELINES, Observation, chosen_baselines, run_baseline
from .checkpoint import model_from_checkpoint
from .data import CubeFile, PairPatchDataset, crop_to_multiple, degrade
from .data.datasets import corners_with_data
from .data.nodata import pair_valid
from .data.rasters import WRITE_DRIVERS, Georeference, check_registration, raster_files, write_raster
from .data.units import check_not_constant, clip_to_input_range, robust_peak
from .data.writers import save_cube
from .devices import pick_device
from .inference import reconstruct_image, resolve_tile
from .metrics import ergas, psnr, sam, valid_pixels
from .models.dhif_net import SCALES
from .outputs import claim_output, write_atomic
from .profiling import timed_call
from .report import METHOD_NAMES, save_figures
from .training import SHORT_RUN_STEPS_PER_EPOCH, short_run_config, train

DEFAULT_STEPS = 400  # about 5 minutes on 2 CPU cores for Houston's 48 x 128 x 128 + 3 x 512 x 512
# The pair's own blur is not known: the baselines that need one assume the protocol's, which
# is also the blur of the reduced-resolution pair (exact there); the response is estimated.
ASSUMED_SIGMA = 2.0


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
    tile: object = "auto"    # HR tile side, 0 (whole image) or "auto"
    overlap: int = 32
    precision: str = "fp32"
    baselines: tuple = DEFAULT_BASELINES
    save_baselines: bool = False
    format: str = None       # of the written cubes; None: Pair.output_format's choice
    overwrite: bool = False
    device: str = "auto"
    seed: int = 0


CONSISTENCY = ("PSNR (dB) of the fused cube, degraded by the same blur and decimation, against the LR-HSI it "
               "came from: how well the result explains its own input, not its accuracy")


CUBE_FORMATS = ("npy", "mat", *WRITE_DRIVERS)


def cube_files(name: str, cube_format: str) -> tuple:
    """The file names of one cube written as `cube_format`."""
    if cube_format in WRITE_DRIVERS:
        return tuple(p.name for p in raster_files(Path(name), cube_format))
    return (f"{name}.{cube_format}",)


def _outputs(cube_format: str) -> tuple:
    """What `dhif fuse` writes in its output folder."""
    cubes = [f for name in ("fused", *BASELINES) for f in cube_files(name, cube_format)]
    return ("run", *cubes, "report.json", "fused_composite.png", "fused_spectra.png")


@dataclasses.dataclass
class Pair:
    """A user's LR-HSI and HR-MSI, read and checked, with their pixels that have data."""
    lr: CubeFile
    msi: CubeFile
    scale: int
    lr_valid: torch.Tensor = None  # (h, w): LR pixels with data, and data under them; None: all
    hr_valid: torch.Tensor = None  # (H, W): HR pixels with data, and data over them; None: all

    def georeference(self) -> Georeference:
        """The fused grid's: the HR-MSI's, else the LR-HSI's refined by the scale, else None."""
        if self.msi.georeference is not None:
            return self.msi.georeference
        return self.lr.georeference and self.lr.georeference.refined(self.scale)

    def nodata(self):
        """The value marking fused pixels without data: the LR-HSI's, else the HR-MSI's."""
        return self.lr.nodata if self.lr.nodata is not None else self.msi.nodata

    def output_format(self, option: str = None) -> str:
        """--format, else the LR-HSI's raster format where it is georeferenced, else GeoTIFF
        where the HR-MSI is, else .npy."""
        if option:
            return option
        if self.lr.format and self.lr.georeference is not None:
            return self.lr.format
        return "tif" if self.msi.georeference is not None else "npy"


def _check_finite(cube: torch.Tensor, path):
    bad = int((~torch.isfinite(cube)).sum())
    if bad:
        raise ValueError(f"{path} holds {bad} NaN or infinite values; fill or mask them before fusing")


def pair_scale(lr_hsi: torch.Tensor, hr_msi: torch.Tensor, scale: int = None) -> int:
    """The resolution ratio of a (C, h, w) LR-HSI and a (m, H, W) HR-MSI, or a one-line
    ValueError saying what is wrong with the pair."""
    (bands, h, w), (channels, height, width) = lr_hsi.shape, hr_msi.shape
    if (h, w) == (height, width):
        raise ValueError(f"the LR-HSI and the HR-MSI are both {h} x {w} pixels; the HR-MSI must be larger by the "
                         "scale (an integer from 2 to 32). Degrade the HSI first if both come at one resolution")
    if h >= height and w >= width:
        raise ValueError(f"the LR-HSI ({bands} x {h} x {w}) is larger than the HR-MSI ({channels} x {height} x "
                         f"{width}); are they swapped? --lr-hsi takes the many-band low-resolution cube")
    ratio = height / h
    scale = scale or round(ratio)
    if scale not in SCALES:
        raise ValueError(f"the HR-MSI is {ratio:.3g} times the LR-HSI's size; DHIF-Net fuses at integer scales "
                         f"from {SCALES[0]} to {SCALES[-1]}: crop or resample the inputs, or give --scale")
    if (height, width) != (h * scale, w * scale):
        raise ValueError(f"the HR-MSI ({height} x {width}) is not the LR-HSI ({h} x {w}) times the scale {scale}; "
                         "crop them to matching areas")
    if channels >= bands:
        raise ValueError(f"the HR-MSI has {channels} bands and the LR-HSI {bands}; the LR-HSI must have more. "
                         "Are --lr-hsi and --hr-msi swapped?")
    return scale


def band_wavelengths(option: str, cube: CubeFile):
    """The LR-HSI's band centres in nm: from --wavelengths ('START:STOP' nm, evenly spaced,
    or a .csv/.txt/.npy file of one value per band), else from the file, else None. A file
    whose wavelengths cannot be used is refused unless --wavelengths replaces them."""
    bands = cube.data.shape[0]
    if not option:
        if cube.wavelength_problem:
            raise ValueError(f"{cube.path}: {cube.wavelength_problem}; give the bands' centres with --wavelengths "
                             "(START:STOP in nm, or a file)")
        return cube.wavelengths
    if ":" in option and not Path(option).exists():
        try:
            start, stop = (float(v) for v in option.split(":"))
        except ValueError:
            raise ValueError(f"--wavelengths {option!r}: expected START:STOP in nm, e.g. 400:700, or a file") from None
        return np.linspace(start, stop, bands)
    path = Path(option)
    if not path.exists():
        raise FileNotFoundError(f"--wavelengths {option!r}: no such file; give START:STOP in nm (e.g. 400:700) or a "
                                "file of one value per band")
    values = np.load(path) if path.suffix.lower() == ".npy" else np.loadtxt(path, delimiter="," if
                                                                           path.suffix.lower() == ".csv" else None)
    values = np.asarray(values, dtype=np.float64).ravel()
    if values.size != bands:
        raise ValueError(f"--wavelengths {path} gives {values.size} values for {bands} bands")
    return values


def training_patch(lr_size: tuple, scale: int, lr_valid=None) -> int:
    """The side of the patches that a model trained on the pair learns from: multiples that
    the scale and the U-Net both divide, near 64 pixels (64 at powers of two), smaller where
    pixels without data leave no larger window; a ValueError where none is left."""
    unit = math.lcm(scale, 16)  # the U-Net divides the degraded LR-HSI by 16
    height, width = (size - size % (scale * 16) for size in lr_size)
    largest = min(unit * max(1, 64 // unit), height, width)
    for patch in range(largest, unit - 1, -unit):
        if lr_valid is None or len(corners_with_data(lr_valid[:height, :width], scale, patch)):
            return patch
    raise ValueError(f"no {unit} x {unit} patch of the LR-HSI is free of no-data pixels: there is too little data "
                     "to train on; give a trained model (--checkpoint or --pretrained)")


def _train_on_pair(settings: FuseSettings, lr_hsi, hr_msi, scale, out, lr_valid=None):
    """A small DHIFNet trained on (degrade(LR-HSI), degrade(HR-MSI)) -> LR-HSI, on patches
    where the LR-HSI has data (lr_valid); returns (the model, what was trained)."""
    target = crop_to_multiple(lr_hsi, scale * 16)
    valid = None if lr_valid is None else lr_valid[:target.shape[1], :target.shape[2]]
    msi = hr_msi[:, :target.shape[1] * scale, :target.shape[2] * scale]
    patch = training_patch(tuple(lr_hsi.shape[1:]), scale, lr_valid)
    steps = None if settings.minutes else settings.steps or DEFAULT_STEPS  # a fixed budget unless --minutes
    config = short_run_config(out / "run", steps, scale=scale, hsi_channels=lr_hsi.shape[0],
                              msi_channels=hr_msi.shape[0], stages=settings.stages, width=settings.width,
                              head_width=settings.head_width, patch=patch, lr=1e-3, device=settings.device,
                              seed=settings.seed, time_limit=settings.minutes * 60 if settings.minutes else None)
    budget = f"{config.epochs * SHORT_RUN_STEPS_PER_EPOCH} steps" if steps else f"{settings.minutes:g} min"
    print(f"dhif fuse: no checkpoint; training {budget} on the pair at reduced resolution "
          f"({tuple(degrade(target, scale).shape)} + {tuple(degrade(msi, scale).shape)} -> {tuple(target.shape)})",
          flush=True)
    started = time.time()
    result = train(config, PairPatchDataset(degrade(target, scale), degrade(msi, scale), target, scale, patch,
                                            config.samples_per_epoch, settings.seed, valid))
    trained = {"trained_here": True, "steps": result.epoch * SHORT_RUN_STEPS_PER_EPOCH,
               "seconds": round(time.time() - started, 1), "settings": {
                   **config.model_dict(), "patch": patch, "batch_size": config.batch_size, "lr": config.lr,
                   "seed": settings.seed}}
    return result.model, trained


def reduced_resolution(model, lr_hsi, hr_msi, scale, device, tile, overlap, precision="fp32",
                       baselines=DEFAULT_BASELINES, lr_valid=None) -> dict:
    """Wald's protocol: every method fuses the inputs degraded by the scale, scored against
    the LR-HSI (PSNR with the LR-HSI's own peak, SAM, ERGAS, seconds) on its pixels with
    data (lr_valid). Scale-free: the inputs may be in any units, as long as every method
    sees the same. The baselines know the reduced pair's blur (it is made here) and
    estimate its spectral response."""
    target = crop_to_multiple(lr_hsi, scale)
    valid = None if lr_valid is None else lr_valid[:target.shape[1], :target.shape[2]]
    msi = hr_msi[:, :target.shape[1] * scale, :target.shape[2] * scale]
    low_hsi, low_msi = degrade(target, scale, ASSUMED_SIGMA)[None], degrade(msi, scale, ASSUMED_SIGMA)[None]
    fused, seconds = timed_call(reconstruct_image, model, low_hsi.to(device), low_msi.to(device), tile, overlap,
                                precision=precision)
    timed = {"dhif": (fused.cpu(), seconds)}
    observation = Observation(scale, ASSUMED_SIGMA)
    timed.update({m: run_baseline(m, low_hsi.to(device), low_msi.to(device), observation) for m in baselines})
    truth = valid_pixels(target[None], valid)
    peak = float(truth.max())
    scores = {}
    for method, (result, seconds) in timed.items():
        result = valid_pixels(clip_to_input_range(result.cpu(), lr_hsi, hr_msi), valid)
        scores[method] = {"psnr": psnr(result, truth, data_range=peak), "sam": sam(result, truth),
                          "ergas": ergas(result, truth, scale), "seconds": round(seconds, 3)}
    return scores


def full_resolution_baselines(lr_data, msi_data, scale, device, baselines) -> tuple:
    """({method: (C, H, W) cube in the LR-HSI's units}, {method: seconds}) of the baselines
    on the whole pair, whose blur is assumed and response estimated."""
    observation = Observation(scale, ASSUMED_SIGMA, blur_known=False)
    cubes, seconds = {}, {}
    for method in baselines:
        cube, seconds[method] = run_baseline(method, lr_data[None].to(device), msi_data[None].to(device), observation)
        cubes[method] = clip_to_input_range(cube[0].cpu(), lr_data, msi_data)
    return cubes, {m: round(t, 3) for m, t in seconds.items()}


def verdict(scores: dict, trained: dict, cube_format: str = "npy") -> str:
    """One line: the best method at reduced resolution, and what to do when it is not DHIF-Net."""
    ranked = sorted(scores, key=lambda m: scores[m]["psnr"], reverse=True)
    if len(ranked) == 1:
        return f"DHIF-Net at reduced resolution: PSNR {scores['dhif']['psnr']:.2f} dB (no baselines chosen)"
    best, other = ranked[0], ranked[1] if ranked[0] == "dhif" else "dhif"
    line = (f"best at reduced resolution: {METHOD_NAMES[best]} (PSNR {scores[best]['psnr']:.2f} dB; "
            f"{METHOD_NAMES[other]} {scores[other]['psnr']:.2f} dB)")
    if best == "dhif":
        return line
    remedy = ("train longer (--steps) or give a trained --checkpoint" if trained.get("trained_here")
              else "a model trained on data like yours")
    return f"{line}: {remedy}, or use {' + '.join(cube_files(best, cube_format))}, written with --save-baselines"


def format_scores(scores: dict, consistency: float) -> str:
    lines = [f"{'reduced resolution':<24}{'PSNR dB':>9}{'SAM deg':>9}{'ERGAS':>8}{'seconds':>9}"]
    lines += [f"{METHOD_NAMES[m]:<24}{s['psnr']:>9.2f}{s['sam']:>9.2f}{s['ergas']:>8.3f}{s['seconds']:>9.2f}"
              for m, s in scores.items()]
    return "\n".join(lines + [f"{'consistency (fused)':<24}{consistency:>9.2f}"])


def _check_model_fits(model, lr_hsi, hr_msi, scale: int, source):
    pair = (lr_hsi.shape[0], hr_msi.shape[0], scale)
    if (model.hsi_channels, model.msi_channels, model.scale) != pair:
        raise ValueError(f"the model in {source} fuses {model.hsi_channels}-band LR-HSIs with {model.msi_channels}-"
                         f"channel HR-MSIs at x{model.scale}; this pair has {pair[0]} bands, {pair[1]} channels, "
                         f"x{scale}")


def check_pair(lr_file: CubeFile, msi_file: CubeFile, settings: FuseSettings) -> Pair:
    """The pair, with every check that needs no model done."""
    for cube in (lr_file, msi_file):
        _check_finite(cube.data, cube.path)
        check_not_constant(cube.data, cube.path)
    scale = pair_scale(lr_file.data, msi_file.data, settings.scale)
    lr_size, msi_size = tuple(lr_file.data.shape[1:]), tuple(msi_file.data.shape[1:])
    check_registration(lr_file.georeference, lr_size, msi_file.georeference, msi_size, scale)
    smallest = scale * 16
    if not settings.checkpoint and min(lr_size) < smallest:
        raise ValueError(f"the LR-HSI is {lr_size[0]} x {lr_size[1]} pixels; training on the pair itself at scale "
                         f"{scale} needs at least {smallest} x {smallest}. Give a trained model with --checkpoint "
                         "instead")
    pair = Pair(lr_file, msi_file, scale, *pair_valid(lr_file.valid, msi_file.valid, scale, lr_size, msi_size))
    if not settings.checkpoint:
        training_patch(lr_size, scale, pair.lr_valid)  # enough pixels with data to train on
    return pair


def _fit_or_load(settings: FuseSettings, model, pair: Pair, lr_hsi, hr_msi, out: Path, device) -> tuple:
    """(model, what was trained): the given model, or one trained here on the pair."""
    if model is not None:
        return model, {"trained_here": False, "checkpoint": str(settings.checkpoint)}
    return _train_on_pair(settings, lr_hsi, hr_msi, pair.scale, out, pair.lr_valid)


def _write_cube(out: Path, name: str, cube: torch.Tensor, cube_format: str, pair: Pair, wavelengths):
    """One (C, H, W) result in the LR-HSI's units, its pixels without data marked with the
    no-data value; rasters with the fused grid's georeference, wavelengths and units."""
    cube = cube.clone()
    if pair.hr_valid is not None:
        cube[:, ~pair.hr_valid] = pair.nodata()
    if cube_format in WRITE_DRIVERS:
        write_raster(out / name, cube.numpy(), cube_format, pair.georeference(), pair.nodata(), wavelengths,
                     pair.lr.units, pair.lr.scale_factor)
    else:
        save_cube(out / f"{name}.{cube_format}", cube.numpy(), pair.lr.layout)


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
                   "nodata": None if pair.hr_valid is None else _json_number(pair.nodata()),
                   "pixels_without_data": 0 if pair.hr_valid is None else int((~pair.hr_valid).sum())},
    }


def _json_number(value):
    return value if value is None or math.isfinite(value) else str(value)


def _scaled_inputs(pair: Pair) -> tuple:
    """(factors, LR-HSI, HR-MSI): each input divided by its factor, its robust peak over the
    pixels with data, as the network sees it; results are multiplied back."""
    factors = robust_peak(pair.lr.valid_values()), robust_peak(pair.msi.valid_values())
    return factors, (pair.lr.data.double() / factors[0]).float(), (pair.msi.data.double() / factors[1]).float()


def fuse(lr_file: CubeFile, msi_file: CubeFile, settings: FuseSettings, out) -> dict:
    """Fuses a user's LR-HSI and HR-MSI (load_cube's CubeFiles) into the folder `out`:
    the fused cube in the LR-HSI's units, the chosen baselines, figures and report.json,
    which it returns."""
    pair = check_pair(lr_file, msi_file, settings)
    lr_data, msi_data, scale = pair.lr.data.float(), pair.msi.data.float(), pair.scale
    baselines = chosen_baselines(settings.baselines)
    wavelengths = band_wavelengths(settings.wavelengths, pair.lr)
    cube_format = pair.output_format(settings.format)
    device = pick_device(settings.device)
    model = model_from_checkpoint(settings.checkpoint, device) if settings.checkpoint else None
    if model is not None:
        _check_model_fits(model, lr_data, msi_data, scale, settings.checkpoint)
    out = Path(out)
    claim_output(out, _outputs(cube_format), settings.overwrite)
    factors, lr_hsi, hr_msi = _scaled_inputs(pair)
    model, trained = _fit_or_load(settings, model, pair, lr_hsi, hr_msi, out, device)
    scores = reduced_resolution(model, lr_hsi, hr_msi, scale, device, settings.tile, settings.overlap,
                                settings.precision, baselines, pair.lr_valid)
    fused = _fuse_whole(settings, model, lr_hsi, hr_msi, device)
    fused = clip_to_input_range((fused.double() * factors[0]).float(), lr_data, msi_data)
    consistency = psnr(valid_pixels(degrade(fused, scale)[None], pair.lr_valid),
                       valid_pixels(lr_data[None], pair.lr_valid), data_range=float(pair.lr.valid_values().max()))
    _write_cube(out, "fused", fused, cube_format, pair, wavelengths)
    cubes, seconds = full_resolution_baselines(lr_data, msi_data, scale, device, baselines)
    for method, cube in cubes.items() if settings.save_baselines else ():
        _write_cube(out, method, cube, cube_format, pair, wavelengths)
    save_figures(out, "fused", None, {"dhif": fused.numpy(), **{m: c.numpy() for m, c in cubes.items()}},
                 inputs={"LR-HSI (input)": lr_data.numpy(), "HR-MSI (input)": msi_data.numpy()},
                 wavelengths=wavelengths)
    report = _report(pair, cube_format, factors, wavelengths, trained, scores, baselines, seconds, fused, consistency)
    write_atomic(out / "report.json", json.dumps(report, indent=2, allow_nan=False))
    print(format_scores(scores, consistency))
    print(f"fused cube {tuple(fused.shape)} ({' + '.join(cube_files('fused', cube_format))}, {pair.lr.layout} as the "
          f"LR-HSI, in its units) and figures in {out}/; everything above in {out / 'report.json'}")
    print(verdict(scores, trained, cube_format))
    return report
