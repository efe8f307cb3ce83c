"""Metrics per scene of a model against the baselines, with figures, cubes and tables."""
import dataclasses
import json
from pathlib import Path

import torch
from tqdm import tqdm

from . import metrics
from .baselines import DEFAULT_BASELINES, Observation, chosen_baselines, run_baseline
from .data import SceneDataset
from .data.units import clip_to_input_range
from .data.writers import save_cube
from .inference import reconstruct_image, resolve_tile
from .outputs import claim_output, write_atomic
from .profiling import timed_call
from .report import save_figures, write_table

# What evaluate() writes in its output folder.
OUTPUTS = ("metrics.csv", "metrics.json", "figures", "cubes")


def _clip(result, dataset, *inputs):
    return result.clamp(0, 1) if dataset.unit_range else clip_to_input_range(result, *inputs)


def _scored(pred, truth, scale: int, border: int, unit_range: bool, valid=None) -> dict:
    """The metrics of a (1, C, H, W) result without `border` pixels at each edge and over the
    pixels with data (valid, or all); PSNR's peak is 1 for data in [0, 1] (the authors'),
    else the truth's own maximum there."""
    if border:
        pred, truth = pred[..., border:-border, border:-border], truth[..., border:-border, border:-border]
        valid = None if valid is None else valid[border:-border, border:-border]
    valid = None if valid is None else valid.to(pred.device)
    return metrics.all_metrics(pred, truth, scale, data_range=1.0 if unit_range else None, valid=valid)


def _named_models(model) -> dict:
    if model is None:
        return {}
    return dict(model) if isinstance(model, dict) else {"dhif": model}


def evaluate(model, dataset, device, out_dir=None, tile=None, overlap=32, cube_format=None, figures=True,
             baselines=DEFAULT_BASELINES, progress=True, border=0, precision="fp32") -> list:
    """Metrics per scene for DHIF-Net (model: a DHIFNet, None, or {method key: DHIFNet} to
    score several) and the baselines (keys of dhif.baselines.BASELINES, which see the
    dataset's own blur and response) on a SceneDataset. Returns rows {scene, method, psnr,
    ..., seconds}; with out_dir, writes metrics.csv/json, figures and (cube_format 'npy' or
    'mat') the "dhif" model's cubes, in the scenes' own units. tile: as reconstruct_image;
    'auto' says each new choice."""
    models = _named_models(model)
    for each in models.values():
        each.eval()
    observation = Observation(dataset.scale, dataset.sigma, dataset.srf)
    out_dir = Path(out_dir) if out_dir else None
    rows, said = [], "nothing yet"
    for lr, msi, hr, name in tqdm(dataset, desc="test", disable=not progress):
        lr, msi, hr = lr[None].to(device), msi[None].to(device), hr[None].to(device)
        timed = {}
        for key, each in models.items():
            chosen, note = resolve_tile(tile, each, lr, msi, precision)
            if note and chosen != said:  # once per tile size, not per scene
                tqdm.write(f"{name}: {note}")
                said = chosen
            timed[key] = timed_call(reconstruct_image, each, lr, msi, chosen, overlap, precision=precision)
        timed.update({method: run_baseline(method, lr, msi, observation) for method in baselines})
        results = {method: _clip(result, dataset, lr, msi) for method, (result, _) in timed.items()}
        for method, pred in results.items():
            rows.append({"scene": name, "method": method, **_scored(pred, hr, dataset.scale, border,
                                                                   dataset.unit_range, dataset.pixels_with_data(name)),
                         "seconds": timed[method][1]})
        if out_dir is not None:
            factor = dataset.factors.get(name, 1.0)
            arrays = {k: (v[0].double().cpu() * factor).float().numpy() for k, v in results.items()}
            lr, msi, hr = lr * factor, msi * factor, hr * factor  # the simulated MSI is linear in the scene
            if figures:
                inputs = {"LR-HSI (input)": lr[0].float().cpu().numpy(), "HR-MSI (input)": msi[0].float().cpu().numpy()}
                save_figures(out_dir / "figures", name, hr[0].float().cpu().numpy(), arrays, inputs=inputs,
                             wavelengths=dataset.wavelengths)
            if cube_format and "dhif" in arrays:
                save_cube(out_dir / "cubes" / f"{name}.{cube_format}", arrays["dhif"])
    if out_dir is not None:
        write_table(rows, out_dir)
    return rows


@dataclasses.dataclass
class ScoreSettings:
    """How score_scenes() scores, as `dhif test`'s options of the same names say."""
    baselines: tuple = DEFAULT_BASELINES  # names, 'all' or 'none' (chosen_baselines)
    border: int = 0           # HR pixels left out of the metrics at each edge
    tile: object = "auto"
    overlap: int = 32
    precision: str = "fp32"
    save_cubes: str = None    # 'npy' or 'mat': also write the model's cubes
    no_figures: bool = False
    overwrite: bool = False

    def check(self, has_model: bool):
        """One ValueError line for settings that leave nothing to do."""
        if not has_model and not chosen_baselines(self.baselines):
            raise ValueError("nothing to test: give --checkpoint, or --baselines other than none")
        if not has_model and self.save_cubes:
            raise ValueError("--save-cubes saves DHIF-Net's cubes: give --checkpoint")


def score_scenes(model, dataset: SceneDataset, device, settings: ScoreSettings, out, protocol: dict) -> list:
    """`dhif test`'s job: the metrics of `model` (None: the baselines only) and the chosen
    baselines on every scene of `dataset`, with figures and cubes, in the folder `out`, and
    in its protocol.json what the caller says of the data (`protocol`) with how it was
    scored. Returns the rows of evaluate()."""
    settings.check(model is not None)
    baselines = chosen_baselines(settings.baselines)
    claim_output(out, OUTPUTS, settings.overwrite)
    rows = evaluate(model, dataset, device, out, settings.tile, settings.overlap, settings.save_cubes,
                    figures=not settings.no_figures, baselines=baselines, border=settings.border,
                    precision=settings.precision)
    protocol = {**protocol, "scale": dataset.scale, "blur_sigma": dataset.sigma, "border": settings.border,
                "baselines": list(baselines),
                "baselines_see": "the protocol's blur and spectral response (simulated data)"}
    write_atomic(Path(out) / "protocol.json", json.dumps(protocol, indent=2))
    return rows


def scene_validator(scenes: dict, config, srf: torch.Tensor, valid: dict = None):
    """validate(model, device) -> mean PSNR over whole simulated scenes (tiles: config.val_tile),
    over the pixels with data of scenes that have a mask in `valid`."""
    dataset = SceneDataset(scenes, config.scale, srf, config.sigma, valid=valid)

    def validate(model, device) -> float:
        model.eval()
        values = []
        with torch.no_grad():
            for lr, msi, hr, name in dataset:
                lr, msi = lr[None].to(device), msi[None].to(device)
                pred = reconstruct_image(model, lr, msi, resolve_tile(config.val_tile, model, lr, msi)[0])
                mask = dataset.pixels_with_data(name)
                mask = None if mask is None else mask.to(device)
                values.append(metrics.psnr_over_valid(pred.clamp(0, 1), hr[None].to(device), mask, data_range=1.0))
        model.train()
        return sum(values) / len(values)

    return validate
