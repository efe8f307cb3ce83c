"""What a run leaves to look at: PNG figures and metric tables (the folder they go to is
dhif.outputs'; cube files are dhif.data.writers')."""
import csv
import io
import json
from pathlib import Path

import numpy as np

from .baselines import BASELINES
from .outputs import write_atomic


# Every method's full name, for figures and summaries (the baselines' are in dhif.baselines).
METHOD_NAMES = {"dhif": "DHIF-Net", "fine_tuned": "DHIF-Net (shipped, fine-tuned)",
                **{key: baseline.name for key, baseline in BASELINES.items()}}
PANELS_PER_ROW = 5  # of the composites figure
PIXEL_MARKERS = {"o": "circle", "^": "triangle", "s": "square"}  # marked on the composites


VISIBLE_RGB_NM = (640, 550, 460)


def composite_bands(bands: int, wavelengths=None) -> tuple:
    """(three band indices shown as R, G, B, what they are). Bands near 640/550/460 nm
    where the wavelengths cover the visible; otherwise three bands spread over the cube,
    named by wavelength where known and by index where not: never an invented axis."""
    if bands == 3:
        return [0, 1, 2], "its 3 channels as R, G, B"
    if bands < 3:
        return [0] * 3, f"channel 1 of {bands} as grey"
    if wavelengths is not None and wavelengths.min() <= 480 and wavelengths.max() >= 620:
        picks = [int(np.abs(wavelengths - nm).argmin()) for nm in VISIBLE_RGB_NM]
    else:
        picks = [round((bands - 1) * f) for f in (0.8, 0.5, 0.2)]
    if wavelengths is None:
        return picks, "bands " + "/".join(str(b + 1) for b in picks) + f" of {bands} as R/G/B"
    return picks, "/".join(f"{wavelengths[b]:.0f}" for b in picks) + " nm as R/G/B"


def false_colour(cube: np.ndarray, wavelengths=None) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) composite of composite_bands, stretched to its 99.5th
    percentile (any units)."""
    rgb = np.stack([cube[b] for b in composite_bands(cube.shape[0], wavelengths)[0]], axis=-1)
    return np.clip(rgb / max(np.percentile(rgb, 99.5), 1e-30), 0, 1)


def _panel_grid(plt, count: int, panel_width: float, panel_height: float):
    """(figure, 2-D array of axes) for `count` image panels in as few rows as PANELS_PER_ROW
    allows, spread evenly over them (7 panels: 4 + 3, not 5 + 2), the unused places hidden."""
    rows = -(-count // PANELS_PER_ROW)
    columns = -(-count // rows)
    fig, axes = plt.subplots(rows, columns, figsize=(panel_width * columns, panel_height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, axes


def _composites(out_dir, name, panels, pixels, plt, wavelengths):
    """False-colour composites, at most PANELS_PER_ROW a row, the spectra's pixels marked on
    each image of the output's size."""
    fig, axes = _panel_grid(plt, len(panels), 3.2, 4.1)
    height, width = panels[-1][1].shape[1:]
    hsi_bands = panels[-1][1].shape[0]
    for ax, (label, cube) in zip(axes.flat, panels):
        known = wavelengths if cube.shape[0] == hsi_bands else None
        ax.imshow(false_colour(cube, known))
        ax.set_title(f"{label}\n{composite_bands(cube.shape[0], known)[1]}", fontsize=8)
        ax.set_xlabel("x (pixels)")
        if cube.shape[1:] == (height, width):
            for marker, (row, col) in zip(PIXEL_MARKERS, pixels):
                ax.plot(col, row, marker, markersize=8, markerfacecolor="none", markeredgecolor="white")
    for row in axes:
        row[0].set_ylabel("y (pixels)")
    fig.suptitle(f"{name}: false colour; markers: the plotted spectra")
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}_composite.png", dpi=100)
    plt.close(fig)


def error_figure(name: str, truth, named: dict, plt):
    """Each method's per-pixel error (RMSE over bands) on a colour scale of its own, from 0 to
    its 99.5th percentile, printed on its colour bar and in its title beside its RMSE: one
    shared scale is set by the worst method and leaves the others black."""
    errors = {k: np.sqrt(((v - truth) ** 2).mean(axis=0)) for k, v in named.items()}
    fig, axes = _panel_grid(plt, len(errors), 3.6, 3.4)
    for ax, (label, error) in zip(axes.flat, errors.items()):
        top = float(np.percentile(error, 99.5)) or 1e-12
        image = ax.imshow(error, cmap="inferno", vmin=0, vmax=top)
        rmse = float(np.sqrt((error ** 2).mean()))
        ax.set_title(f"{label}\nRMSE {rmse:.3g}; colour scale 0 to {top:.3g}", fontsize=8)
        ax.set_xlabel("x (pixels)")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.02)
    for row in axes:
        row[0].set_ylabel("y (pixels)")
    fig.suptitle(f"{name}: error against the ground truth, RMSE over bands (data units); each panel on its own "
                 "scale", fontsize=10)
    fig.tight_layout()
    return fig


def save_figures(out_dir: Path, name: str, truth, results: dict, pixels=None, inputs: dict = None,
                 wavelengths=None):
    """PNG figures of one scene: false-colour composites of the inputs (`inputs`: label ->
    (C, h, w) array, e.g. the LR-HSI and the HR-MSI), the truth and every method's result,
    per-pixel error maps, and the spectra at a few pixels, which the composites mark.
    `results` maps a method ("dhif", "bicubic", "cs") to its (C, H, W) array; truth may be
    None (fusion of real data without ground truth). wavelengths: the bands' centres in nm,
    or None: spectra are then drawn over the band index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    height, width = next(iter(results.values())).shape[1:]
    pixels = pixels or [(height // 4, width // 4), (height // 2, width // 2), (3 * height // 4, 2 * width // 3)]
    named = {METHOD_NAMES.get(k, k): v for k, v in results.items()}
    panels = list((inputs or {}).items()) + ([("ground truth", truth)] if truth is not None else []) + \
        list(named.items())
    _composites(out_dir, name, panels, pixels, plt, wavelengths)
    if truth is not None:
        fig = error_figure(name, truth, named, plt)
        fig.savefig(out_dir / f"{name}_error.png", dpi=100)
        plt.close(fig)
    fig, axes = plt.subplots(1, len(pixels), figsize=(4 * len(pixels), 3.4), squeeze=False)
    bands = next(iter(results.values())).shape[0]
    axis = wavelengths if wavelengths is not None else np.arange(1, bands + 1)
    for ax, marker, (row, col) in zip(axes[0], PIXEL_MARKERS, pixels):
        if truth is not None:
            ax.plot(axis, truth[:, row, col], "k-", lw=2, label="ground truth")
        for label, cube in named.items():
            ax.plot(axis, cube[:, row, col], label=label)
        ax.set_title(f"pixel (x {col}, y {row}), {PIXEL_MARKERS[marker]} on the composites", fontsize=9)
        ax.set_xlabel("wavelength (nm)" if wavelengths is not None else "band (wavelengths not known)")
        ax.set_ylabel("value (data units)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / f"{name}_spectra.png", dpi=100)
    plt.close(fig)


def summarise(rows: list) -> list:
    """Mean of every metric per method, as rows with scene 'mean'."""
    methods = list(dict.fromkeys(r["method"] for r in rows))
    names = [k for k in rows[0] if k not in ("scene", "method")] if rows else []
    return [{"scene": "mean", "method": m, **{k: float(np.mean([r[k] for r in rows if r["method"] == m]))
                                              for k in names}} for m in methods]


def format_table(rows: list) -> str:
    """The metric rows (and their means per method) as an aligned text table."""
    keys = ["scene", "method", "psnr", "sam", "ergas", "ssim", "rmse", "uiqi", "seconds"]
    lines = ["  ".join(f"{k:>10}" for k in keys)]
    scenes = len({row["scene"] for row in rows})
    for row in rows + [{**mean, "scene": f"mean of {scenes}"} for mean in summarise(rows)]:
        lines.append("  ".join(f"{row[k]:>10.4f}" if isinstance(row[k], float) else f"{str(row[k]):>10}"
                               for k in keys))
    return "\n".join(lines)


def write_table(rows: list, out_dir: Path):
    """The metric rows and their means as metrics.csv and metrics.json in out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    everything = rows + summarise(rows)
    table = io.StringIO(newline="")
    writer = csv.DictWriter(table, fieldnames=list(everything[0]))
    writer.writeheader()
    writer.writerows(everything)
    write_atomic(out_dir / "metrics.csv", table.getvalue())
    write_atomic(out_dir / "metrics.json", json.dumps(everything, indent=2))
