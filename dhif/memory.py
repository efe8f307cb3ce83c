"""Freed memory kept for the next tensor, on Linux with glibc.

glibc hands every freed block above its mmap threshold (32 MiB at most) back to the kernel
and trims the top of its heap, so that the next layer's output of the same size is faulted
in again, page by page, and zeroed by the kernel: in tiled inference with the paper's model
that was a third of the run, spent in the kernel. keep_freed_memory() tells glibc to serve
every block from its heap and never to trim it (what MALLOC_MMAP_MAX_=0 and
MALLOC_TRIM_THRESHOLD_ would do, had they been set before the process started), for every
allocation of the process: torch's tensors, oneDNN's buffers, numpy's arrays. Freed memory
then stays with the process for reuse until it exits.
"""
import ctypes
import os
import sys

M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4  # mallopt's parameters (malloc.h)
INT_MAX = 2 ** 31 - 1                  # mallopt takes a C int: a larger value would wrap
OPT_OUT = "DHIF_KEEP_FREED_MEMORY"     # "0": leave the allocator as it is

_applied = []


def keep_freed_memory() -> bool:
    """Applies the settings once per process; True where they are in effect. Nothing happens
    outside Linux with glibc, with DHIF_KEEP_FREED_MEMORY=0, or where the user tunes glibc's
    malloc (a MALLOC_* variable, or glibc.malloc in GLIBC_TUNABLES: theirs win)."""
    if not _applied:
        _applied.append(_apply())
    return _applied[0]


def trim():
    """Gives the free pages inside glibc's heap back to the kernel (malloc_trim), where
    keep_freed_memory was called and is in effect: between two tiles, so that what one
    tile's forward left scattered does not add to the next one's peak."""
    if _applied and _applied[0]:
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _apply() -> bool:
    if os.environ.get(OPT_OUT) == "0" or not sys.platform.startswith("linux"):
        return False
    if any(name.startswith("MALLOC_") for name in os.environ) or "glibc.malloc" in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version  # glibc only
    except (OSError, AttributeError):
        return False
    libc.mallopt.argtypes, libc.mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return libc.mallopt(M_MMAP_MAX, 0) == 1 and libc.mallopt(M_TRIM_THRESHOLD, INT_MAX) == 1
