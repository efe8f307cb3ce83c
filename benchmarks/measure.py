"""Measurement helpers shared by the benchmarks and the report: bytes moved (counted as in
the maths of the adaptive filter), peak memory, machine description."""
import datetime
import gc
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path

import torch

from dhif.ops import build_info

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from helpers import CAVE_DIR  # noqa: E402  (DHIF_DATA, else ../shared/data: one rule for tests and benchmarks)

TAPS = 7
# DHIF_BENCH_TINY=1: every benchmark at a tiny size, to check the benchmarking itself
# (gpu_check.sh --dry-run), not to measure anything.
TINY = os.environ.get("DHIF_BENCH_TINY") == "1"
COPY_MEGABYTES = 8 if TINY else 400


def filter_bytes(shape, element_size: int, backward: bool, taps: int = TAPS) -> int:
    """Bytes that the three per-axis passes of spatio_spectral_filter must move: per voxel
    and pass, (K + 2) E forward and (2K + 3) E backward."""
    voxels = shape[0] * shape[1] * shape[2] * shape[3]
    per_pass = (2 * taps + 3) if backward else (taps + 2)
    return 3 * per_pass * element_size * voxels


def synchronize(device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def copy_bandwidth(device: str, megabytes: int = 400, repeats: int = 10) -> float:
    """GB/s of a tensor copy, counting bytes read and written, median of `repeats`."""
    src = torch.empty(megabytes * 2 ** 20 // 4, device=device)
    dst = torch.empty_like(src)
    dst.copy_(src)
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        dst.copy_(src)
        synchronize(device)
        times.append(time.perf_counter() - start)
    times.sort()
    return 2 * src.numel() * 4 / times[len(times) // 2] / 1e9


def cuda_peak_extra(fn) -> int:
    """Bytes allocated by one call of fn on the GPU beyond what was allocated before it."""
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - before


def peak_rss() -> int:
    """Peak resident memory of this address space, in bytes. Not getrusage's ru_maxrss:
    Linux carries that over from the parent through fork and exec, so a child of a big
    pytest process starts at its parent's peak."""
    with open("/proc/self/status") as f:
        return int(next(line for line in f if line.startswith("VmHWM")).split()[1]) * 1024


def _probe_peak(make_step, args) -> int:
    step = make_step(*args)
    gc.collect()
    before = peak_rss()
    step()
    return peak_rss() - before


def cpu_peak_extra_in_fresh_process(make_step, *args, timeout: int = 900) -> int:
    """Peak RSS growth of one call of make_step(*args)() in a new interpreter, after
    make_step(*args) built the model and inputs. The CPU allocator keeps freed memory, so
    later steps in one process under-report; the first step in a fresh process is the
    honest peak. make_step must be a module-level function (the new interpreter imports it)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply_async(_probe_peak, (make_step, args)).get(timeout)


def add_cave_argument(parser):
    """--cave: the CAVE complete_ms_data folder; by default the one under DHIF_DATA (or
    ../shared/data), where there is one."""
    found = str(CAVE_DIR) if CAVE_DIR.is_dir() else None
    parser.add_argument("--cave", default=found, required=found is None,
                        help=f"the CAVE database's complete_ms_data folder (default: {found or 'none found'}; "
                        "DHIF_DATA names a folder that holds cave/complete_ms_data)")


def machine() -> dict:
    """What the numbers were measured on."""
    info = {"date": datetime.date.today().isoformat(), "torch": torch.__version__, "python": platform.python_version(),
            "cpu": _cpu_name(), "cores": os.cpu_count(), "threads": torch.get_num_threads(),
            "dhif_build": build_info()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name()
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
