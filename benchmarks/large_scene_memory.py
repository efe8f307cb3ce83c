"""Peak memory of `dhif train --data` on one large scene with DataLoader workers.

    python benchmarks/large_scene_memory.py [--size 2000] [--bands 100] [--workers 2] [--format npy|h5]

Writes a size x size x bands float32 .npy scene into a temporary folder (or, for comparison, an .h5 file, which is read whole), trains a small
model for a few steps on it, and samples the proportional set size (PSS: shared pages
split between the processes that map them) of the run and its workers every 0.1 s. The
sum of PSS is what the run costs the machine; the sum of RSS counts shared pages once per
process. Linux only (/proc/<pid>/smaps_rollup).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _children(pid: int) -> list:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(c) for c in f.read().split()]
    except OSError:
        return []
    return kids + [g for k in kids for g in _children(k)]


def _kib(pid: int, field: str) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))
    except (OSError, StopIteration):
        return 0


def measure(command: list) -> dict:
    """Runs `command`; the peaks (MiB) of the process tree's summed PSS, its anonymous part
    (memory of its own) and its file part (page cache of the mapped scene, which the kernel
    can drop), and of summed RSS; and the most processes seen."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    fields = ("Pss", "Pss_Anon", "Pss_File", "Rss")
    peaks, processes = dict.fromkeys(fields, 0), 0
    while process.poll() is None:
        tree = [process.pid] + _children(process.pid)
        for field in fields:
            peaks[field] = max(peaks[field], sum(_kib(p, field) for p in tree))
        processes = max(processes, len(tree))
        time.sleep(0.1)
    if process.returncode:
        raise SystemExit(f"the run failed: {process.stderr.read()[-2000:]}")
    return {**{k: v / 1024 for k, v in peaks.items()}, "processes": processes}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--bands", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--format", choices=["npy", "h5"], default="npy")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR", "/tmp")) as folder:
        data = Path(folder) / "data"
        data.mkdir()
        # Written band by band through a memory map: this script does not hold the cube either.
        cube = np.lib.format.open_memmap(data / "scene.npy", mode="w+", dtype=np.float32,
                                         shape=(args.bands, args.size, args.size))
        rng = np.random.default_rng(0)
        for band in cube:
            band[:] = rng.random((args.size, args.size), dtype=np.float32) * 4000
        cube.flush()
        if args.format == "h5":
            import h5py

            with h5py.File(data / "scene.h5", "w") as f:
                f["cube"] = cube
        del cube
        if args.format == "h5":
            (data / "scene.npy").unlink()
        size_mib = args.bands * args.size * args.size * 4 / 2 ** 20
        command = [sys.executable, "-m", "dhif.cli", "train", "--data", str(data), "--out", str(Path(folder) / "run"),
                   "--epochs", "1", "--samples", "32", "--batch-size", "4", "--patch", "64", "--scale", "4",
                   "--width", "8", "--stages", "1", "--head-width", "16", "--workers", str(args.workers),
                   "--srf", str(_box_response(Path(folder), args.bands)), "--device", "cpu"]
        result = measure(command)
    print(f"{time.strftime('%Y-%m-%d')}, {os.uname().nodename}: a {args.size} x {args.size} x {args.bands} float32 "
          f"scene ({size_mib:.0f} MiB, .{args.format}), dhif train --data with {args.workers} workers, "
          f"{result['processes']} processes: peak PSS {result['Pss']:.0f} MiB (anonymous {result['Pss_Anon']:.0f} "
          f"MiB, mapped scene {result['Pss_File']:.0f} MiB); summed RSS {result['Rss']:.0f} MiB")


def _box_response(folder: Path, bands: int) -> Path:
    """A 3-channel response of equal boxes over the bands (the data are random anyway)."""
    table = np.zeros((3, bands))
    for channel, part in enumerate(np.array_split(np.arange(bands), 3)):
        table[channel, part] = 1
    np.save(folder / "box.npy", table)
    return folder / "box.npy"


if __name__ == "__main__":
    main()
