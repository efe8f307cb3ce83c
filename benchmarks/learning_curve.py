"""Held-out PSNR against training time and steps, from a `dhif train` run's log.csv, with
bicubic and component substitution on the same scenes as lines: a PNG and a Markdown table.

    python benchmarks/learning_curve.py --run runs/cpu_x8 --cave .../complete_ms_data \
        --scenes watercolors flowers ... [--png benchmarks/learning_curve.png]

The run must have validated on those scenes (--val-scenes); its time axis is the training
steps' own time (log.csv's seconds), without validation and checkpoints.
"""
import argparse
import csv
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from measure import add_cave_argument, machine  # noqa: E402

from dhif.checkpoint import load_checkpoint  # noqa: E402
from dhif.data import SceneDataset, load_scenes, spectral_response  # noqa: E402
from dhif.evaluate import evaluate  # noqa: E402
from dhif.report import METHOD_NAMES, summarise  # noqa: E402


def curve(run: Path) -> list:
    """[(epoch, step, training hours, held-out PSNR)] at every validated epoch of a run."""
    config = load_checkpoint(run / "last.pt")["config"]
    steps_per_epoch = config["samples_per_epoch"] // config["batch_size"]
    points, seconds = [], 0.0
    with open(run / "log.csv") as f:
        for row in csv.DictReader(f):
            seconds += float(row["seconds"])
            if row["val_psnr"]:
                epoch = int(row["epoch"])
                points.append((epoch, epoch * steps_per_epoch, seconds / 3600, float(row["val_psnr"])))
    return points


def baseline_psnr(cave: str, scenes: list) -> dict:
    """Mean PSNR of bicubic and component substitution on the scenes, the authors' protocol."""
    cubes = load_scenes(cave, scenes, scaling="as-read").cubes
    dataset = SceneDataset(cubes, 8, spectral_response("nikon_d700"))
    means = summarise(evaluate(None, dataset, "cpu", baselines=("bicubic", "cs"), progress=False))
    return {row["method"]: row["psnr"] for row in means}


def plot(points: list, lines: dict, path: Path, title: str):
    figure, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, index, label in ((axes[0], 2, "training time (hours, this machine)"), (axes[1], 1, "training steps")):
        ax.plot([p[index] for p in points], [p[3] for p in points], "o-", label="DHIF-Net (held-out scenes)")
        for method, value in lines.items():
            below = " (below the axis)" if value < min(p[3] for p in points) - 0.5 else ""
            ax.axhline(value, linestyle="--", color="grey" if method == "bicubic" else "tab:red",
                       label=f"{METHOD_NAMES[method]} {value:.2f} dB{below}")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("mean PSNR (dB)")
    axes[0].set_ylim(min(p[3] for p in points) - 0.5, max(p[3] for p in points) + 0.5)
    axes[1].legend(loc="lower right")
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def markdown(points: list, lines: dict, title: str) -> str:
    rows = [title, "", "| epoch | steps | training hours | held-out PSNR dB | vs component substitution |",
            "|---|---|---|---|---|"]
    rows += [f"| {e} | {s} | {h:.2f} | {p:.2f} | {p - lines['cs']:+.2f} |" for e, s, h, p in points]
    return "\n".join(rows)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, type=Path, help="a dhif train --out folder (log.csv, last.pt)")
    add_cave_argument(parser)
    parser.add_argument("--scenes", nargs="+", required=True, help="the run's validation scenes")
    parser.add_argument("--png", type=Path, default=Path(__file__).with_name("learning_curve.png"))
    args = parser.parse_args()
    points = curve(args.run)
    if not points:
        raise SystemExit(f"{args.run / 'log.csv'} has no validated epoch: train with --val-scenes and --val-every")
    lines = baseline_psnr(args.cave, args.scenes)
    info = machine()
    title = (f"{time.strftime('%Y-%m-%d', time.gmtime())}, {info.get('cpu')}, {info.get('threads')} threads, "
             f"torch {info.get('torch')}; x8 CAVE, {len(args.scenes)} held-out scenes, whole 512 x 512 images")
    plot(points, lines, args.png, title)
    print(markdown(points, lines, title))
    print(f"figure: {args.png}")
