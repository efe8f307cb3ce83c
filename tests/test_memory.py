"""Freed memory kept for reuse (dhif.memory), the CPU memory statistics and the op's output pool
(dhif._C.memory)."""
import os
import platform
import subprocess
import sys

import pytest
import torch

import dhif
from dhif.memory import keep_freed_memory
from dhif.ops.extension import _C

MIB = 2 ** 20

# Two whole-image inferences with a small DHIFNet: the second one's minor page faults, and a
# hash of its output and of a tiled one's (tiles give free pages back between them: dhif.memory.trim).
TWICE = """
import hashlib, resource, sys, torch, dhif
from dhif.models import DHIFNet
kept = dhif.keep_freed_memory() if sys.argv[1] == "keep" else False
from dhif.inference import reconstruct_image
torch.manual_seed(0)
model = DHIFNet(scale=4, stages=2, width=16, head_width=32).eval()
lr, msi = torch.rand(1, 31, 96, 96), torch.rand(1, 3, 384, 384)
reconstruct_image(model, lr, msi)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
out = reconstruct_image(model, lr, msi)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
tiled = reconstruct_image(model, lr, msi, tile=192, overlap=32)
print(kept, faults, *(hashlib.sha256(x.numpy().tobytes()).hexdigest() for x in (out, tiled)))
"""


def _twice(call="keep", **env) -> list:
    completed = subprocess.run([sys.executable, "-c", TWICE, call], capture_output=True, text=True, timeout=600,
                               env={**{k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}, **env})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.split()


@pytest.mark.slow
@pytest.mark.skipif(not keep_freed_memory(), reason="needs Linux with glibc and no MALLOC_ settings")
def test_freed_memory_is_reused_without_page_faults_and_changes_no_result():
    kept, faults, *digests = _twice()
    for left in (_twice(DHIF_KEEP_FREED_MEMORY="0"), _twice("import only")):  # opted out; not asked for
        assert (kept, left[0]) == ("True", "False")
        assert int(faults) * 5 < int(left[1]), (faults, left[1])
        assert digests == left[2:]


@pytest.mark.slow
def test_a_users_malloc_settings_win():
    assert _twice(MALLOC_ARENA_MAX="2")[0] == "False"
    assert _twice(GLIBC_TUNABLES="glibc.malloc.tcache_count=0")[0] == "False"


def test_keep_freed_memory_is_in_effect_exactly_on_linux_with_glibc_and_no_user_settings():
    untuned = not any(name.startswith("MALLOC_") for name in os.environ) and \
        "glibc.malloc" not in os.environ.get("GLIBC_TUNABLES", "") and os.environ.get("DHIF_KEEP_FREED_MEMORY") != "0"
    expected = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc" and untuned
    assert keep_freed_memory() is expected
    assert keep_freed_memory() is dhif.keep_freed_memory() is expected  # asked again: the same answer


@pytest.mark.slow
def test_importing_dhif_changes_no_process_wide_setting_and_the_commands_do():
    check = ("import dhif, dhif.memory, sys; before = list(dhif.memory._applied); "
             "from dhif.cli import main; main(['info']); print(before, dhif.memory._applied, file=sys.stderr)")
    completed = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stderr.strip().splitlines()[-1] == f"[] [{keep_freed_memory()}]"


# c10::GetCPUAllocator(), read through ctypes: what torch allocates CPU tensors with.
CPU_ALLOCATOR = """
import ctypes, os, sys, torch
libc10 = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libc10.so"))
get = libc10._ZN3c1015GetCPUAllocatorEv
get.restype = ctypes.c_void_p
before = get()
import dhif, dhif.ops
from dhif.ops.extension import _C
x = torch.rand(1, 31, 64, 64, requires_grad=True)
dhif.spatio_spectral_filter(x, *torch.randn(3, 1, 7, 31, 64, 64)).sum().backward()
after_use = get()
_C.memory.install_stats()
print(before == after_use, after_use != get())
"""


@pytest.mark.slow
@pytest.mark.skipif(_C is None, reason="needs the compiled extension")
def test_importing_and_calling_dhif_leaves_torchs_cpu_allocator_and_install_stats_changes_it():
    completed = subprocess.run([sys.executable, "-c", CPU_ALLOCATOR], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert completed.stdout.split() == ["True", "True"]


@pytest.mark.skipif(_C is None, reason="needs the compiled extension")
def test_cpu_memory_statistics_count_large_tensors():
    _C.memory.install_stats()
    assert _C.memory.stats_installed()
    _C.memory.reset_peak()
    start = _C.memory.in_use()
    a = torch.empty(64 * MIB, dtype=torch.uint8)
    b = torch.empty(32 * MIB, dtype=torch.uint8)
    small = torch.empty(1000)
    assert _C.memory.in_use() - start == 96 * MIB
    del a
    assert _C.memory.in_use() - start == 32 * MIB
    assert _C.memory.peak() - start == 96 * MIB
    _C.memory.reset_peak()
    assert _C.memory.peak() == _C.memory.in_use()
    del b, small
    assert _C.memory.in_use() == start


def _filter_outputs(shape=(1, 16, 256, 256)):
    """The forward's two outputs, y and inv_norm: 4 MiB each at the default shape."""
    x, taps = torch.rand(shape), torch.randn(shape[0], 7, *shape[1:])
    return torch.ops.dhif.adaptive_filter_forward(x, taps, 3, "replicate", True)


@pytest.mark.skipif(_C is None, reason="needs the compiled extension")
def test_the_output_pool_reuses_what_the_ops_outputs_free_and_keeps_no_more_than_their_peak():
    _C.memory.release_pool()
    held = _C.memory.pool_stats()["in_use"]  # by tensors of earlier tests still alive, if any
    y, inv_norm = _filter_outputs()
    blocks = {y.untyped_storage().data_ptr(), inv_norm.untyped_storage().data_ptr()}
    assert _C.memory.pool_stats() == {"in_use": held + 8 * MIB, "cached": 0, "peak": held + 8 * MIB}
    del y, inv_norm
    assert _C.memory.pool_stats() == {"in_use": held, "cached": 8 * MIB, "peak": held + 8 * MIB}
    y, inv_norm = _filter_outputs()
    assert {y.untyped_storage().data_ptr(), inv_norm.untyped_storage().data_ptr()} == blocks  # nothing new
    assert _C.memory.pool_stats()["cached"] == 0
    del y, inv_norm
    for _ in range(3):  # outputs of other sizes: the oldest cached blocks go, the cache stays under the peak
        outputs = [_filter_outputs((1, 16, 256, 64 * k)) for k in (5, 6)]
        del outputs
        stats = _C.memory.pool_stats()
        assert stats["in_use"] == held and 0 < stats["cached"] <= stats["peak"]
    _C.memory.release_pool()
    assert _C.memory.pool_stats()["cached"] == 0


@pytest.mark.skipif(_C is None, reason="needs the compiled extension")
def test_the_memory_statistics_count_the_pools_blocks_while_tensors_hold_them():
    _C.memory.install_stats()
    _C.memory.release_pool()
    start = _C.memory.in_use()
    outputs = _filter_outputs()
    assert _C.memory.in_use() - start == 8 * MIB
    del outputs
    assert _C.memory.in_use() == start  # cached for reuse, but no tensor's


@pytest.mark.slow
@pytest.mark.skipif(_C is None, reason="needs the compiled extension")
def test_dhif_output_pool_0_takes_every_output_from_torchs_allocator():
    check = ("import torch, dhif; from dhif.ops.extension import _C; "
             "y, n = torch.ops.dhif.adaptive_filter_forward(torch.rand(1, 16, 256, 256), torch.randn(1, 7, 16, 256, 256), "
             "3, 'replicate', True); print(_C.memory.pool_stats()['peak'])")
    for setting, peak in (("0", "0"), ("1", str(8 * MIB))):
        completed = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300,
                                   env={**os.environ, "DHIF_OUTPUT_POOL": setting})
        assert completed.returncode == 0, completed.stderr[-3000:]
        assert completed.stdout.split()[-1] == peak
