"""`dhif fuse` at x2, x3 and x4 on one CAVE scene whose truth is known: the scene is degraded
by the authors' protocol at each scale, fused as a user's pair would be (a model trained on
the pair itself for a fixed number of steps, and the classical baselines), and every result
scored against the truth. A Markdown table on stdout and in --json.

    python benchmarks/scale_sweep.py --cave .../complete_ms_data --scene watercolors \
        [--scales 2 3 4] [--steps 400] [--size 480] [--json scale_sweep.json]
"""
import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from measure import add_cave_argument, machine

from dhif.baselines import BASELINES
from dhif.cli import main as dhif_main
from dhif.data import degrade, read_cave_scene, spectral_response, to_msi
from dhif.metrics import ergas, psnr, sam
from dhif.report import METHOD_NAMES


def fuse_at(truth: torch.Tensor, scale: int, steps: int, folder: Path) -> dict:
    """{method: (PSNR, SAM, ERGAS)} of `dhif fuse` and every baseline at one scale."""
    np.save(folder / "lr.npy", degrade(truth, scale).numpy())
    np.save(folder / "msi.npy", to_msi(truth, spectral_response("nikon_d700", truth.shape[0])).numpy())
    out = folder / f"x{scale}"
    started = time.time()
    assert dhif_main(["fuse", "--lr-hsi", str(folder / "lr.npy"), "--hr-msi", str(folder / "msi.npy"),
                      "--lr-layout", "chw", "--msi-layout", "chw", "--steps", str(steps), "--baselines", "all",
                      "--save-baselines", "--device", "cpu", "--out", str(out)]) == 0
    seconds = time.time() - started
    scores = {}
    for method in ("fused", *BASELINES):
        result = torch.from_numpy(np.load(out / f"{method}.npy"))[None]
        scores["dhif" if method == "fused" else method] = (psnr(result, truth[None]), sam(result, truth[None]),
                                                            ergas(result, truth[None], scale))
    return {"scores": scores, "seconds": round(seconds, 1)}


def table(results: dict) -> str:
    scales = list(results)
    lines = ["| method | " + " | ".join(f"x{s} PSNR / SAM / ERGAS" for s in scales) + " |",
             "|---|" + "---|" * len(scales)]
    for method in results[scales[0]]["scores"]:
        cells = [" / ".join(f"{v:.2f}" for v in results[s]["scores"][method]) for s in scales]
        lines.append(f"| {METHOD_NAMES[method]} | " + " | ".join(cells) + " |")
    lines.append("| `dhif fuse` seconds | " + " | ".join(str(results[s]["seconds"]) for s in scales) + " |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_cave_argument(parser)
    parser.add_argument("--scene", default="watercolors")
    parser.add_argument("--scales", type=int, nargs="+", default=[2, 3, 4])
    parser.add_argument("--steps", type=int, default=400, help="dhif fuse's training steps at every scale")
    parser.add_argument("--size", type=int, default=480, help="top-left crop of the scene, divisible by each scale")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    truth = read_cave_scene(Path(args.cave) / f"{args.scene}_ms")[:, :args.size, :args.size].contiguous()
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        for scale in args.scales:
            results[scale] = fuse_at(truth, scale, args.steps, Path(folder))
    print(f"{args.scene}, top-left {args.size} x {args.size}, {args.steps} steps at every scale; {machine()}")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps({"scene": args.scene, "size": args.size, "steps": args.steps,
                                               "machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
