"""The CPU block cache (csrc/cpu/block_cache.h): torch's CPU allocator, keeping freed large
blocks for reuse, with no more held than the most in use at once."""
import os
import resource
import subprocess
import sys

import pytest
import torch

from dhif.ops._ext import CPU_BLOCK_CACHE, _C

from helpers import require_fused

MIB = 2 ** 20


@pytest.fixture
def cache():
    require_fused("cpu")
    if not CPU_BLOCK_CACHE:
        pytest.skip("DHIF_CPU_CACHE=0")
    _C.release_cpu_block_cache()
    yield _C
    _C.release_cpu_block_cache()


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def test_a_freed_block_is_reused_without_page_faults(cache):
    first = torch.empty(64 * MIB // 4).fill_(1.0)
    block = first.data_ptr()
    del first
    assert cache.cpu_block_cache_bytes() >= 64 * MIB
    before = _minor_faults()
    second = torch.empty(60 * MIB // 4).fill_(2.0)  # fits: at most 1/8 smaller than the block
    faults = _minor_faults() - before
    assert second.data_ptr() == block
    assert faults < 64 * MIB // 4096 // 10, faults  # a fresh block faults in 16384 pages
    assert cache.cpu_block_cache_bytes() == 0


def test_small_blocks_pass_through(cache):
    small = torch.empty(1000)
    del small
    assert cache.cpu_block_cache_bytes() == 0


def _run(code: str, **env) -> str:
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                               env={**os.environ, **env})
    assert completed.returncode == 0, completed.stderr[-3000:]
    return completed.stdout.split()


def test_no_more_is_held_than_the_most_in_use_at_once():
    require_fused("cpu")
    code = ("import torch, dhif.ops; from dhif.ops._ext import _C\n"
            "a = torch.empty(100 * 2**20, dtype=torch.uint8); del a\n"      # 100 MiB in use at most, then cached
            "b = torch.empty(60 * 2**20, dtype=torch.uint8)\n"              # does not fit: the 100 MiB go back
            "print(_C.cpu_block_cache_bytes(), _C.cpu_block_cache_peak_in_use() // 2**20)\n"
            "c = torch.empty(30 * 2**20, dtype=torch.uint8); del b\n"       # 90 MiB in use: under the peak
            "d = torch.empty(50 * 2**20, dtype=torch.uint8)\n"              # 60 MiB cached does not fit 50 ...
            "print(_C.cpu_block_cache_bytes() // 2**20)")                    # ... and 30 + 60 + 50 > 100: freed
    assert _run(code) == ["0", "100", "0"]


def test_the_cache_can_be_left_out_and_changes_no_result():
    """DHIF_CPU_CACHE=0 leaves torch's allocator; a DHIFNet gives the same bits either way,
    tiled, with the fused filter (a kernel that relied on fresh, zeroed pages would not)."""
    require_fused("cpu")
    code = ("import torch, dhif.ops; from dhif.models import DHIFNet; from dhif.inference import reconstruct_image\n"
            "from dhif.ops._ext import _C, CPU_BLOCK_CACHE\n"
            "torch.manual_seed(0); model = DHIFNet(scale=4, stages=2, width=8, head_width=16).eval()\n"
            "lr, msi = torch.rand(1, 31, 48, 48), torch.rand(1, 3, 192, 192)\n"
            "out = [reconstruct_image(model, lr, msi, tile=96, overlap=16) for _ in range(2)]\n"
            "assert torch.equal(out[0], out[1])\n"
            "import hashlib; print(CPU_BLOCK_CACHE, hashlib.sha256(out[0].numpy().tobytes()).hexdigest())")
    cached, uncached = _run(code), _run(code, DHIF_CPU_CACHE="0")
    assert cached[0] == "True" and uncached[0] == "False"
    assert cached[1] == uncached[1]
