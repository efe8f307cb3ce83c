"""Whole-image inference (optionally tiled), metrics against baselines, saved cubes and
PNG figures."""
import csv
import json
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import metrics
from .baselines import BASELINES


def _tile_starts(size: int, tile: int, step: int, align: int) -> list:
    if tile >= size:
        return [0]
    starts = list(range(0, size - tile, step)) + [size - tile]
    return sorted({s - s % align for s in starts})


def _blend_window(length: int, overlap: int, dtype, device) -> torch.Tensor:
    """1 inside, linear ramps over `overlap` pixels at both ends: neighbouring tiles cross-fade."""
    position = torch.arange(length, dtype=dtype, device=device)
    ramp = torch.minimum(position + 1, length - position) / (overlap + 1)
    return ramp.clamp(max=1.0)


@torch.no_grad()
def fuse_image(model, lr_hsi: torch.Tensor, hr_msi: torch.Tensor, tile: int = None, overlap: int = 32,
               progress: bool = False) -> torch.Tensor:
    """Fuse (B, C, h, w) and (B, m, H, W) into (B, C, H, W). With `tile` (HR pixels), the
    image is processed in overlapping tiles whose outputs are cross-faded, which bounds
    memory on large images."""
    scale = model.scale
    height, width = hr_msi.shape[2:]
    if tile is None or (tile >= height and tile >= width):
        return model(lr_hsi, hr_msi)
    if tile % scale or overlap % scale:
        raise ValueError(f"tile ({tile}) and overlap ({overlap}) must be multiples of the scale ({scale})")
    if overlap >= tile:
        raise ValueError(f"overlap ({overlap}) must be smaller than the tile ({tile})")
    out = hr_msi.new_zeros(lr_hsi.shape[0], lr_hsi.shape[1], height, width)
    weight = hr_msi.new_zeros(1, 1, height, width)
    tiles = [(top, left) for top in _tile_starts(height, tile, tile - overlap, scale)
             for left in _tile_starts(width, tile, tile - overlap, scale)]
    for top, left in tqdm(tiles, desc="tiles", disable=not progress, leave=False):
        th, tw = min(tile, height - top), min(tile, width - left)
        piece = model(lr_hsi[..., top // scale:(top + th) // scale, left // scale:(left + tw) // scale],
                      hr_msi[..., top:top + th, left:left + tw])
        w = torch.outer(_blend_window(th, overlap, out.dtype, out.device),
                        _blend_window(tw, overlap, out.dtype, out.device))[None, None]
        out[..., top:top + th, left:left + tw] += piece * w
        weight[..., top:top + th, left:left + tw] += w
    return out / weight


def false_colour(cube: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) composite from bands near 650, 550 and 450 nm of 400-700 nm."""
    bands = cube.shape[0]
    picks = [round((bands - 1) * f) for f in (25 / 30, 15 / 30, 5 / 30)]
    rgb = np.stack([cube[b] for b in picks], axis=-1)
    return np.clip(rgb / max(np.percentile(rgb, 99.5), 1e-6), 0, 1)


def save_figures(out_dir: Path, name: str, truth, results: dict, pixels=None):
    """PNG figures of one scene: false-colour composites, per-pixel error maps and spectra
    at a few pixels. `results` maps a method name to its (C, H, W) array; truth may be None
    (fusion of real data without ground truth)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    panels = ([("truth", truth)] if truth is not None else []) + list(results.items())
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels), 3.4), squeeze=False)
    for ax, (label, cube) in zip(axes[0], panels):
        ax.imshow(false_colour(cube))
        ax.set_title(label)
        ax.axis("off")
    fig.suptitle(f"{name}: false colour (~650/550/450 nm)")
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}_composite.png", dpi=100)
    plt.close(fig)
    height, width = next(iter(results.values())).shape[1:]
    pixels = pixels or [(height // 4, width // 4), (height // 2, width // 2), (3 * height // 4, 2 * width // 3)]
    if truth is not None:
        errors = {k: np.sqrt(((v - truth) ** 2).mean(axis=0)) for k, v in results.items()}
        vmax = max(float(np.percentile(e, 99.5)) for e in errors.values()) or 1e-6
        fig, axes = plt.subplots(1, len(errors), figsize=(3.4 * len(errors), 3.4), squeeze=False)
        for ax, (label, error) in zip(axes[0], errors.items()):
            image = ax.imshow(error, cmap="inferno", vmin=0, vmax=vmax)
            ax.set_title(f"{label}: RMSE over bands")
            ax.axis("off")
        fig.colorbar(image, ax=list(axes[0]), shrink=0.8)
        fig.savefig(out_dir / f"{name}_error.png", dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(1, len(pixels), figsize=(4 * len(pixels), 3.2), squeeze=False)
    wavelengths = np.linspace(400, 700, next(iter(results.values())).shape[0])
    for ax, (row, col) in zip(axes[0], pixels):
        if truth is not None:
            ax.plot(wavelengths, truth[:, row, col], "k-", lw=2, label="truth")
        for label, cube in results.items():
            ax.plot(wavelengths, cube[:, row, col], label=label)
        ax.set_title(f"pixel ({row}, {col})")
        ax.set_xlabel("wavelength (nm, nominal)")
    axes[0][0].legend()
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}_spectra.png", dpi=100)
    plt.close(fig)


def save_cube(path: Path, cube: np.ndarray):
    """(C, H, W) as .npy, or as .mat with key 'hsi' in (H, W, C) like the authors' files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".mat":
        from scipy.io import savemat

        savemat(path, {"hsi": cube.transpose(1, 2, 0)}, do_compression=True)
    else:
        np.save(path, cube)


def evaluate(model, dataset, device, out_dir=None, tile=None, overlap=32, cube_format=None, figures=True,
             baselines=("bicubic", "cs"), progress=True) -> list:
    """Metrics per scene for DHIF-Net and the baselines. Returns rows {scene, method, psnr, ...};
    with out_dir, writes metrics.csv/json, figures and (cube_format 'npy' or 'mat') cubes."""
    model.eval()
    out_dir = Path(out_dir) if out_dir else None
    rows = []
    for lr, msi, hr, name in tqdm(dataset, desc="test", disable=not progress):
        lr, msi, hr = lr[None].to(device), msi[None].to(device), hr[None].to(device)
        results = {"dhif": fuse_image(model, lr, msi, tile, overlap).clamp(0, 1)}
        for method in baselines:
            results[method] = BASELINES[method](lr, msi, model.scale).clamp(0, 1)
        for method, pred in results.items():
            rows.append({"scene": name, "method": method, **metrics.all_metrics(pred, hr, model.scale)})
        if out_dir is not None:
            arrays = {k: v[0].float().cpu().numpy() for k, v in results.items()}
            if figures:
                save_figures(out_dir / "figures", name, hr[0].float().cpu().numpy(), arrays)
            if cube_format:
                save_cube(out_dir / "cubes" / f"{name}.{cube_format}", arrays["dhif"])
    if out_dir is not None:
        write_table(rows, out_dir)
    return rows


def summarise(rows: list) -> list:
    """Mean of every metric per method, as rows with scene 'mean'."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    names = [k for k in rows[0] if k not in ("scene", "method")] if rows else []
    return [{"scene": "mean", "method": m, **{k: float(np.mean([r[k] for r in rows if r["method"] == m]))
                                              for k in names}} for m in methods]


def format_table(rows: list) -> str:
    keys = ["scene", "method", "psnr", "sam", "ergas", "ssim", "rmse", "uiqi"]
    lines = ["  ".join(f"{k:>10}" for k in keys)]
    for row in rows + summarise(rows):
        lines.append("  ".join(f"{row[k]:>10.4f}" if isinstance(row[k], float) else f"{str(row[k]):>10}"
                               for k in keys))
    return "\n".join(lines)


def write_table(rows: list, out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    everything = rows + summarise(rows)
    with open(out_dir / "metrics.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(everything[0]))
        writer.writeheader()
        writer.writerows(everything)
    (out_dir / "metrics.json").write_text(json.dumps(everything, indent=2))
