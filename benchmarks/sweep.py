"""The op alone over a range of sizes: time and achieved bandwidth of the fused kernels
against the reference and torch.compile of the reference, forward + backward of
spatio_spectral_filter, as a PNG plot with the copy bandwidth measured in the same run.

    python benchmarks/sweep.py --device cpu --out benchmarks/op_sweep_cpu.png
"""
import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from bench_adaptive_filter import IMPLS, make_inputs, step_fn  # noqa: E402
from measure import COPY_MEGABYTES, copy_bandwidth, filter_bytes, machine, synchronize  # noqa: E402

STYLES = {"fused": "o-", "reference": "s--", "compiled_reference": "^-."}

SIZES = [16, 32, 64, 96, 128, 192, 256, 384, 512]


def median_time(step, device, repeats):
    step()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return times[len(times) // 2]


def sweep(device, sizes, budget_s=2.0):
    rows = []
    for size in sizes:
        shape = (1, 31, size, size)
        moved = filter_bytes(shape, 4, False) + filter_bytes(shape, 4, True)
        for impl in IMPLS:
            torch._dynamo.reset()  # each size compiles afresh, as a user's fixed-size run would
            x, taps = make_inputs(shape, device, True)
            step = step_fn(x, taps, impl, True)
            first = median_time(step, device, 1)
            repeats = max(1, min(50, int(budget_s / max(first, 1e-6))))
            seconds = median_time(step, device, repeats)
            rows.append({"size": size, "voxels": 31 * size * size, "impl": impl, "seconds": seconds,
                         "gbps": moved / seconds / 1e9})
            print(json.dumps(rows[-1]), flush=True)
    return rows


def plot(rows, copy_gbps: float, out: Path, title: str):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_time, ax_bw) = plt.subplots(1, 2, figsize=(11, 4))
    for impl, style in STYLES.items():
        points = [r for r in rows if r["impl"] == impl]
        ax_time.loglog([r["voxels"] for r in points], [r["seconds"] * 1e3 for r in points], style, label=impl)
        ax_bw.semilogx([r["voxels"] for r in points], [r["gbps"] for r in points], style, label=impl)
    ax_bw.axhline(copy_gbps, color="grey", linestyle=":", label=f"tensor copy ({copy_gbps:.0f} GB/s)")
    ax_time.set(xlabel="voxels (31 x N x N)", ylabel="forward + backward (ms)", title="time")
    ax_bw.set(xlabel="voxels (31 x N x N)", ylabel="GB/s (bytes of the maths page)", title="achieved bandwidth")
    for ax in (ax_time, ax_bw):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--sizes", type=int, nargs="*", default=SIZES)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    out = Path(args.out or f"benchmarks/op_sweep_{args.device}.png")
    rows = sweep(args.device, args.sizes)
    copy_gbps = copy_bandwidth(args.device, COPY_MEGABYTES, 5)
    info = machine()
    title = (f"spatio_spectral_filter fwd+bwd, float32, {info.get('gpu') if args.device == 'cuda' else info['cpu']}"
             f" ({info['date']}, torch {info['torch']})")
    plot(rows, copy_gbps, out, title)
    out.with_suffix(".json").write_text(json.dumps({"machine": info, "copy_gbps": copy_gbps, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
