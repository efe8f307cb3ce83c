"""Instructions that the CPU kernels execute for one forward + backward of the three passes
of spatio_spectral_filter at a small size, counted by valgrind's callgrind. Unlike a time,
the count is the same from run to run on a busy machine, so a change in the kernels shows
as a number. Takes about 90 s per capability (valgrind runs torch's import too).

    python benchmarks/instruction_count.py [--capability avx2] [--shape 1 31 32 32]

valgrind does not emulate AVX-512, so the AVX2 and DEFAULT kernels are the ones counted.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ENTRY_POINTS = {"forward": "adaptive_filter_forward_kernel", "backward": "adaptive_filter_backward_kernel"}


def run_passes(shape):
    """The workload, run inside valgrind: one thread, so that the kernels run under their
    entry points (callgrind counts only there)."""
    import torch

    torch.set_num_threads(1)
    import dhif.ops  # noqa: F401  (registers the op)
    from dhif.ops import SPATIO_SPECTRAL_PASSES

    generator = torch.Generator().manual_seed(0)
    x = torch.rand(shape, generator=generator)
    for dim, padding in SPATIO_SPECTRAL_PASSES:
        taps = torch.randn(shape[0], 7, *shape[1:], generator=generator)
        y, inv_norm = torch.ops.dhif.adaptive_filter_forward(x, taps, dim, padding, True)
        torch.ops.dhif.adaptive_filter_backward(torch.ones_like(y), x, taps, inv_norm, dim, padding, True, True, True)
        x = y
    print(json.dumps({"capability": dhif.ops.build_info()["cpu_capability"]}))


def count(shape, capability):
    if not shutil.which("valgrind"):
        sys.exit("instruction_count: valgrind is not installed (apt install valgrind)")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
        command += [f"--toggle-collect=*{name}*" for name in ENTRY_POINTS.values()]
        command += [sys.executable, __file__, "--child", "--shape", *map(str, shape)]
        env = {**os.environ, "ATEN_CPU_CAPABILITY": capability, "OMP_NUM_THREADS": "1"}
        completed = subprocess.run(command, env=env, capture_output=True, text=True)
        if completed.returncode != 0:
            sys.exit(f"instruction_count: valgrind failed:\n{completed.stderr[-3000:]}")
        chosen = json.loads(completed.stdout.strip().splitlines()[-1])["capability"]
        annotate = subprocess.run(["callgrind_annotate", "--inclusive=yes", out], capture_output=True, text=True,
                                  check=True).stdout
    counts = {"shape": list(shape), "capability": chosen}
    for name, symbol in ENTRY_POINTS.items():
        # Inclusive counts: one line per function, "N (pct)  file:function" or "N  file:function".
        hits = [int(m.group(1).replace(",", "")) for m in re.finditer(r"^\s*([\d,]+)\s.*" + symbol, annotate, re.M)]
        counts[f"{name}_instructions"] = max(hits) if hits else None
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--capability", default="avx2", choices=["default", "avx2"],
                        help="ATEN_CPU_CAPABILITY for the run (default: avx2)")
    parser.add_argument("--shape", type=int, nargs=4, default=[1, 31, 32, 32], metavar=("B", "C", "H", "W"),
                        help="input shape (default: 1 31 32 32)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_passes(tuple(args.shape))
    else:
        print(json.dumps(count(tuple(args.shape), args.capability)))


if __name__ == "__main__":
    main()
