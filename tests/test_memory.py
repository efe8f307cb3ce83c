"""Freed memory kept for reuse (dhif.memory), and the CPU memory statistics (dhif._C)."""
import os
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


@pytest.mark.skipif(not keep_freed_memory(), reason="needs Linux with glibc and no MALLOC_ settings")
def test_freed_memory_is_reused_without_page_faults_and_changes_no_result():
    kept, faults, *digests = _twice()
    for left in (_twice(DHIF_KEEP_FREED_MEMORY="0"), _twice("import only")):  # opted out; not asked for
        assert (kept, left[0]) == ("True", "False")
        assert int(faults) * 5 < int(left[1]), (faults, left[1])
        assert digests == left[2:]


def test_a_users_malloc_settings_win():
    assert _twice(MALLOC_ARENA_MAX="2")[0] == "False"
    assert _twice(GLIBC_TUNABLES="glibc.malloc.tcache_count=0")[0] == "False"


def test_keep_freed_memory_answers_the_same_every_time():
    assert keep_freed_memory() == keep_freed_memory() == dhif.keep_freed_memory()


def test_importing_dhif_changes_no_process_wide_setting_and_the_commands_do():
    check = ("import dhif, dhif.memory, sys; before = list(dhif.memory._applied); "
             "from dhif.cli import main; main(['info']); print(before, dhif.memory._applied, file=sys.stderr)")
    completed = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stderr.strip().splitlines()[-1] == f"[] [{keep_freed_memory()}]"


@pytest.mark.skipif(_C is None, reason="needs the compiled extension")
def test_cpu_memory_statistics_count_large_tensors():
    _C.reset_cpu_memory_peak()
    start = _C.cpu_memory_in_use()
    a = torch.empty(64 * MIB, dtype=torch.uint8)
    b = torch.empty(32 * MIB, dtype=torch.uint8)
    small = torch.empty(1000)
    assert _C.cpu_memory_in_use() - start == 96 * MIB
    del a
    assert _C.cpu_memory_in_use() - start == 32 * MIB
    assert _C.cpu_memory_peak() - start == 96 * MIB
    _C.reset_cpu_memory_peak()
    assert _C.cpu_memory_peak() == _C.cpu_memory_in_use()
    del b, small
    assert _C.cpu_memory_in_use() == start
