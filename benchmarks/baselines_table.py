"""The classical baselines (and, with --checkpoint, a DHIF-Net) on CAVE scenes at the authors'
protocol: `dhif test --baselines all`, then a Markdown table of the means and each method's
seconds per scene, with the machine and date.

    python benchmarks/baselines_table.py --cave .../complete_ms_data [--scenes ...] [--checkpoint run/last.pt]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

from measure import add_cave_argument, machine

from dhif.cli import main as dhif
from dhif.report import METHOD_NAMES, summarise


def markdown(rows: list, scenes: list, title: str) -> str:
    lines = [title, "", "| method | PSNR dB | SAM deg | ERGAS | SSIM | seconds per scene |", "|---|---|---|---|---|---|"]
    for row in summarise(rows):
        lines.append(f"| {METHOD_NAMES[row['method']]} | {row['psnr']:.2f} | {row['sam']:.2f} | {row['ergas']:.3f} | "
                     f"{row['ssim']:.4f} | {row['seconds']:.2f} |")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    per_scene = ["", "PSNR dB per scene:", "", "| scene | " + " | ".join(METHOD_NAMES[m] for m in methods) + " |",
                 "|---" * (1 + len(methods)) + "|"]
    for scene in scenes:
        per_scene.append(f"| {scene} | " + " | ".join(f"{r['psnr']:.2f}" for r in rows if r["scene"] == scene) + " |")
    return "\n".join(lines + per_scene)


def run(args) -> str:
    with tempfile.TemporaryDirectory() as out:
        argv = ["test", "--cave", args.cave, "--baselines", "all", "--out", out, "--no-figures", "--device", "cpu"]
        argv += ["--scenes", *args.scenes] if args.scenes else []
        argv += ["--checkpoint", args.checkpoint] if args.checkpoint else []
        if dhif(argv) != 0:
            raise SystemExit("dhif test failed")
        rows = [r for r in json.loads((Path(out) / "metrics.json").read_text()) if r["scene"] != "mean"]
    scenes = list(dict.fromkeys(r["scene"] for r in rows))
    info = machine()
    title = (f"{time.strftime('%Y-%m-%d', time.gmtime())}, {info.get('cpu', 'CPU')}, torch {info.get('torch')}; "
             f"x8, Gaussian sigma 2, Nikon D700, {len(scenes)} CAVE scene(s) of 512 x 512, whole images, clipped to "
             f"[0, 1]; the mean over the scenes")
    return markdown(rows, scenes, title)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cave_argument(parser)
    parser.add_argument("--scenes", nargs="*")
    parser.add_argument("--checkpoint")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args()
    table = run(args)
    print(table)
    if args.out:
        Path(args.out).write_text(table + "\n")
