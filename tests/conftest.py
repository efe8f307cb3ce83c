"""Fixtures and the hypothesis profile of the tests; the shared constants are in helpers.py."""
import os
import tempfile

# torch.compile's on-disk caches do not key on a custom op's schema: code compiled against
# an earlier build of dhif._C would be replayed. Each test session compiles afresh.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="dhif-inductor-")

import pytest
import torch
from hypothesis import settings

from helpers import CAVE_DIR, DEVICES, require_fused

# CI runs the same examples every time; a developer's runs keep exploring.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


@pytest.fixture
def fused_device(device):
    require_fused(device)
    return device


@pytest.fixture
def cave_dir():
    if not CAVE_DIR.is_dir():
        pytest.skip(f"CAVE data not found at {CAVE_DIR}")
    return CAVE_DIR


def pytest_collection_modifyitems(config, items):
    """Tests parametrised on the CUDA device carry the `cuda` marker (`pytest -m cuda` runs
    just those on a GPU machine); `cuda` tests skip where there is no CUDA device."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("device") == "cuda":
            item.add_marker(pytest.mark.cuda)
        if item.get_closest_marker("cuda") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
