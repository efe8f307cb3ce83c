"""The reproduction path on this machine: `dhif convert` of an authors'-format x8 model, then
`dhif test` on CAVE-sized scenes, and the tiled inference of one 512 x 512 image alone, in
fp32 and bf16, with freed memory kept (dhif.memory, the default) and without
(DHIF_KEEP_FREED_MEMORY=0), side by side in one run (interleaved, `--repeats` times; the
tables give each configuration's fastest run).

    python benchmarks/reproduction.py [--cave DIR --scenes face ...] [--checkpoint PATH]
        [--tile 256] [--repeats 2] [--json out.json]

Without --cave, 512 x 512 synthetic scenes are generated; without --checkpoint, the model
is the paper's x8 DHIF-Net with random weights in the authors' pickled format, converted
(speed does not depend on the weights; accuracy does: give a trained --checkpoint to
compare bf16's PSNR and SAM with fp32's). Each run is a fresh process, whose wall, user
and system time, minor page faults and peak RSS come from wait4.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from authors_format import authors_state_dict, pickled_authors_model  # noqa: E402

from measure import machine  # noqa: E402

CONFIGS = [("fp32", "1"), ("fp32", "0"), ("bf16", "1"), ("bf16", "0")]  # (precision, DHIF_KEEP_FREED_MEMORY)
# One tiled 512 x 512 inference with the checkpoint's model; prints a hash of the result.
INFERENCE = """
import hashlib, sys, torch
from dhif.checkpoint import model_from_checkpoint
from dhif.inference import reconstruct_image
torch.manual_seed(0)
model = model_from_checkpoint(sys.argv[1])
lr, msi = torch.rand(1, model.hsi_channels, 512 // model.scale, 512 // model.scale), torch.rand(1, 3, 512, 512)
out = reconstruct_image(model, lr, msi, tile=int(sys.argv[2]), overlap=32, precision=sys.argv[3])
print(hashlib.sha256(out.numpy().tobytes()).hexdigest())
"""


def _run(command: list, env: dict) -> dict:
    started = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    out, err = process.stdout.read(), process.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{err[-3000:]}")
    return {"wall_s": wall, "user_s": usage.ru_utime, "sys_s": usage.ru_stime, "minor_faults": usage.ru_minflt,
            "peak_rss_mib": usage.ru_maxrss / 1024, "stdout": out}


def _data(args, folder: Path) -> list:
    """The dataset arguments of `dhif test`: --cave with scenes, or a --data folder of synthetic scenes."""
    if args.cave:
        return ["--cave", args.cave, "--scenes", *args.scenes]
    from dhif.data.synthetic import synthetic_scene

    data = folder / "scenes"
    data.mkdir()
    for seed in range(len(args.scenes)):
        np.save(data / f"synthetic{seed}.npy", synthetic_scene(512, seed=seed).numpy())
    return ["--data", str(data)]


def _checkpoint(args, folder: Path) -> tuple:
    """(checkpoint, seconds of dhif convert, or None)."""
    if args.checkpoint:
        return args.checkpoint, None
    import torch

    pickled_authors_model(authors_state_dict(dtype=torch.float32), folder / "model_500.pth")
    converted = folder / "authors_x8.pt"
    run = _run([sys.executable, "-m", "dhif.cli", "convert", str(folder / "model_500.pth"), str(converted)], {})
    return str(converted), run["wall_s"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cave", default=None, help="a CAVE complete_ms_data folder (else synthetic scenes)")
    parser.add_argument("--scenes", nargs="+", default=["watercolors"], help="with --cave; else their count counts")
    parser.add_argument("--checkpoint", default=None, help="a trained model (else the authors' format, random)")
    parser.add_argument("--tile", default="256")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", default=None, help="also write every run here")
    args = parser.parse_args()
    runs = {config: [] for config in CONFIGS}
    inference = {config: [] for config in CONFIGS}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        data = _data(args, folder)
        checkpoint, convert_s = _checkpoint(args, folder)
        for repeat in range(args.repeats):
            for precision, cache in CONFIGS:
                out = folder / f"{precision}_cache{cache}_{repeat}"
                command = [sys.executable, "-m", "dhif.cli", "test", *data, "--checkpoint", checkpoint, "--out",
                           str(out), "--tile", args.tile, "--precision", precision, "--no-figures", "--save-cubes",
                           "npy", "--device", "cpu"]
                run = _run(command, {"DHIF_KEEP_FREED_MEMORY": cache})
                run["metrics"] = json.loads((out / "metrics.json").read_text())
                run["cubes"] = {p.stem: np.load(p) for p in sorted((out / "cubes").glob("*.npy"))}
                runs[(precision, cache)].append(run)
                alone = _run([sys.executable, "-c", INFERENCE, checkpoint, args.tile, precision],
                             {"DHIF_KEEP_FREED_MEMORY": cache})
                inference[(precision, cache)].append(alone)
                print(f"repeat {repeat + 1}: {precision}, freed memory {'kept' if cache == '1' else 'returned'}: "
                      f"dhif test {run['wall_s']:.1f} s, inference {alone['wall_s']:.1f} s", file=sys.stderr,
                      flush=True)
    report(runs, inference, args, convert_s)


def _dhif_mean(run: dict, key: str) -> float:
    return next(r[key] for r in run["metrics"] if r["scene"] == "mean" and r["method"] == "dhif")


def _table(best: dict, accuracy: bool):
    base = best[("fp32", "0")]
    print("| precision | freed memory | wall s | user s | system s | system / user | minor faults | peak RSS MiB "
          "| speed-up" + (" | DHIF-Net PSNR | SAM |" if accuracy else " |"))
    print("|---|---|---|---|---|---|---|---|---|" + ("---|---|" if accuracy else ""))
    for (precision, cache), run in best.items():
        print(f"| {precision} | {'kept' if cache == '1' else 'returned'} | {run['wall_s']:.1f} | {run['user_s']:.1f} | "
              f"{run['sys_s']:.1f} | {100 * run['sys_s'] / run['user_s']:.1f}% | {run['minor_faults']:,} | "
              f"{run['peak_rss_mib']:.0f} | {base['wall_s'] / run['wall_s']:.2f}x |" + (
                  f" {_dhif_mean(run, 'psnr'):.3f} | {_dhif_mean(run, 'sam'):.3f} |" if accuracy else ""))


def report(runs: dict, inference: dict, args, convert_s):
    best = {config: min(rs, key=lambda r: r["wall_s"]) for config, rs in runs.items()}
    alone = {config: min(rs, key=lambda r: r["wall_s"]) for config, rs in inference.items()}
    base = best[("fp32", "0")]
    info = machine()
    print(f"{time.strftime('%Y-%m-%d')}, {info.get('cpu', '?')}, {os.cpu_count()} cores, torch {info['torch']}; "
          f"{'trained ' + args.checkpoint if args.checkpoint else 'the paper x8 model (authors format, converted in '}"
          f"{'' if args.checkpoint else f'{convert_s:.1f} s)'}, --tile {args.tile}; fastest of {args.repeats} "
          "interleaved runs\n")
    print(f"`dhif test` on {len(args.scenes)} {'CAVE' if args.cave else 'synthetic'} 512 x 512 scene(s) (reading, "
          "inference, bicubic and CS, six metrics, cubes):\n")
    _table(best, accuracy=True)
    print("\nOne tiled 512 x 512 inference alone (process start and model load included):\n")
    _table(alone, accuracy=False)
    cubes = [best[("fp32", c)]["cubes"] for c in ("1", "0")]
    identical = all(np.array_equal(cubes[0][k], cubes[1][k]) for k in cubes[0])
    same_hash = len({alone[("fp32", c)]["stdout"] for c in ("1", "0")}) == 1
    bf16 = best[("bf16", "1")]
    print(f"\nfp32 results with freed memory kept and returned: "
          f"{'bit-identical' if identical and same_hash else 'DIFFERENT'}; bf16 - fp32 (dhif test): "
          f"PSNR {_dhif_mean(bf16, 'psnr') - _dhif_mean(base, 'psnr'):+.3f} dB, "
          f"SAM {_dhif_mean(bf16, 'sam') - _dhif_mean(base, 'sam'):+.3f} deg")
    if args.json:
        everything = {"dhif test": runs, "inference": inference}
        Path(args.json).write_text(json.dumps({
            part: {f"{p}/keep{c}": [{k: v for k, v in r.items() if k != "cubes"} for r in rs]
                   for (p, c), rs in configs.items()} for part, configs in everything.items()}, indent=2))


if __name__ == "__main__":
    main()
