"""Benchmarks run with `pytest benchmarks/` (pytest-benchmark). Each result carries the
machine, the date and the build it was measured with."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from measure import machine  # noqa: E402

DEVICES = ["cpu", "cuda"]  # collected everywhere, so that `-k cuda` can be checked without a GPU


def pytest_benchmark_update_machine_info(config, machine_info):
    machine_info["dhif"] = machine()


@pytest.fixture(params=DEVICES)
def device(request):
    if request.param == "cuda" and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    return request.param
