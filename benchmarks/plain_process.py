"""The op as a library user calls it: forward + backward of spatio_spectral_filter in a plain
Python process of their own that imports dhif and calls no setup function, each
configuration in fresh processes, interleaved, side by side:

- fused: the default (the op's outputs come from its output pool, csrc/cpu/output_pool.h);
- fused, no pool: DHIF_OUTPUT_POOL=0, what a plain process paid before the pool;
- fused, no pool, malloc kept: DHIF_OUTPUT_POOL=0 and dhif.keep_freed_memory() called first,
  the other way (glibc told never to give freed memory back, for the whole process);
- compiled reference: torch.compile of the pure-PyTorch reference, what a user writes instead;
- reference: the reference in eager mode.

Time: the median of `--reps` calls after two warm-up calls (compiling included), in each of
`--rounds` processes; the table gives the median over rounds with the range. Memory: in a
process of its own, peak RSS growth (VmHWM after /proc/self/clear_refs) over three calls
after a warm-up on a small batch (the compiled reference compiles with dynamic shapes
there), so that the compiler's own memory is not counted, while the pool's cache, the
allocator's kept memory and everything the calls keep are.

    python benchmarks/plain_process.py [--rounds 3] [--reps 10] [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from measure import TINY, machine  # noqa: E402

CASES = {"train_batch": (4, 31, 96, 96), "cave_image": (1, 31, 512, 512)}
if TINY:
    CASES = {"train_batch": (2, 31, 16, 16), "cave_image": (1, 31, 32, 32)}
# name: (impl, environment, call dhif.keep_freed_memory() first)
CONFIGS = {
    "fused": ("fused", {}, False),
    "fused, no pool": ("fused", {"DHIF_OUTPUT_POOL": "0"}, False),
    "fused, no pool, malloc kept": ("fused", {"DHIF_OUTPUT_POOL": "0"}, True),
    "compiled reference": ("compiled_reference", {}, False),
    "reference": ("reference", {}, False),
}

CHILD = r"""
import functools, json, statistics, sys, time
import torch
impl, shape, reps, mode = sys.argv[1], tuple(map(int, sys.argv[2].split(","))), int(sys.argv[3]), sys.argv[4]
keep = sys.argv[5] == "1"
import dhif
from dhif.ops import spatio_spectral_filter
if keep:
    dhif.keep_freed_memory()

def inputs(shape):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=g).requires_grad_()
    return x, [torch.randn(shape[0], 7, *shape[1:], generator=g).requires_grad_() for _ in range(3)]

if impl == "compiled_reference":
    fn = torch.compile(functools.partial(spatio_spectral_filter, impl="reference"), dynamic=mode == "memory")
else:
    fn = functools.partial(spatio_spectral_filter, impl=impl)

def step(x, taps):
    fn(x, *taps).sum().backward()
    for t in (x, *taps):
        t.grad = None

def status(field):
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith(field)).split()[1]) * 1024

if mode == "memory":
    step(*inputs((2, shape[1], 24, 24)))
    x, taps = inputs(shape)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # VmHWM := VmRSS
    before = status("VmRSS")
    for _ in range(3):
        step(x, taps)
    print(json.dumps({"peak_extra_bytes": status("VmHWM") - before}))
else:
    x, taps = inputs(shape)
    for _ in range(2):
        step(x, taps)
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        step(x, taps)
        times.append(time.perf_counter() - start)
    print(json.dumps({"median_s": statistics.median(times), "min_s": min(times)}))
"""


def run_child(config: str, shape, reps: int, mode: str) -> dict:
    impl, env, keep = CONFIGS[config]
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "DHIF_"))}
    completed = subprocess.run([sys.executable, "-c", CHILD, impl, ",".join(map(str, shape)), str(reps), mode,
                                "1" if keep else "0"], env={**environment, **env}, capture_output=True, text=True,
                               timeout=1800)
    if completed.returncode != 0:
        raise SystemExit(f"{config} {shape} {mode} failed:\n{completed.stderr[-3000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def measure(rounds: int, reps: int) -> dict:
    results = {case: {config: {"median_s": [], "min_s": []} for config in CONFIGS} for case in CASES}
    for round_ in range(rounds):
        for case, shape in CASES.items():
            for config in CONFIGS:
                slow = CONFIGS[config][0] == "reference" and not TINY
                timed = run_child(config, shape, max(2, reps // 4) if slow else reps, "time")
                for key in ("median_s", "min_s"):
                    results[case][config][key].append(timed[key])
                print(f"round {round_ + 1}/{rounds} {case} {config}: {timed['median_s'] * 1e3:.1f} ms", flush=True)
    for case, shape in CASES.items():
        for config in CONFIGS:
            results[case][config].update(run_child(config, shape, 1, "memory"))
    return results


def table(results: dict) -> str:
    lines = ["| size | configuration | forward + backward, ms (median over rounds; range) | vs compiled reference "
             "| extra peak RSS, MB |", "|---|---|---|---|---|"]
    for case, configs in results.items():
        compiled = statistics.median(configs["compiled reference"]["median_s"])
        for config, r in configs.items():
            median = statistics.median(r["median_s"])
            lines.append(f"| {case} {CASES[case]} | {config} | {median * 1e3:.1f} ({min(r['median_s']) * 1e3:.1f}-"
                         f"{max(r['median_s']) * 1e3:.1f}) | {compiled / median:.2f}x | "
                         f"{r['peak_extra_bytes'] / 1e6:.0f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = measure(args.rounds, args.reps)
    print(f"\n{machine()}\n\n{table(results)}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
