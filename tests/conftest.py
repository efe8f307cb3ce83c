"""Fixtures and the hypothesis profile of the tests; the shared constants are in helpers.py."""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

# torch.compile's on-disk caches do not key on a custom op's schema: code compiled against
# an earlier build of dhif._C would be replayed. Each test session compiles afresh.
os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="dhif-inductor-")

import pytest
import torch
from hypothesis import settings

from helpers import CAVE_DIR, DEVICES, SHARED_DATA, require_fused

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
        pytest.skip(f"CAVE data not found at {CAVE_DIR} (DHIF_DATA names the folder that holds cave/)")
    return CAVE_DIR


@pytest.fixture
def shared_data():
    """shared_data("houston/houston_dataset.mat"): the path of a real data file under
    SHARED_DATA, or a skip where it is absent."""
    def path(relative: str) -> Path:
        found = SHARED_DATA / relative
        if not found.exists():
            pytest.skip(f"real data not found: {found} (DHIF_DATA names the folder that holds it)")
        return found
    return path


REAL_DATA_FIXTURES = {"cave_dir", "shared_data"}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects
def pytest_collection_modifyitems(config, items):
    """Tests parametrised on the CUDA device carry the `cuda` marker (`pytest -m cuda` runs
    just those on a GPU machine); `cuda` tests skip where there is no CUDA device. Tests that
    read real data are `slow`."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("device") == "cuda":
            item.add_marker(pytest.mark.cuda)
        if item.get_closest_marker("cuda") and not torch.cuda.is_available():
            item.add_marker(pytest.mark.skip(reason="needs a CUDA device"))
        if REAL_DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def _refused(what: str):
    def refuse(*args, **kwargs):
        raise AssertionError(f"{what} in a test without @pytest.mark.slow: the quick tier (-m 'not slow') starts "
                             "no Python process and runs no inductor; mark the test slow")
    return refuse


def _no_python_processes(start_process):
    """Popen.__init__ that refuses to start Python (an interpreter, dhif, torchrun: seconds
    each); a library's `uname -p` still runs."""
    def init(self, args, *rest, **kwargs):
        program = Path(str(args if isinstance(args, (str, bytes, os.PathLike)) else args[0])).name
        if program.startswith("python") or program in ("dhif", "torchrun", Path(sys.executable).name):
            _refused(f"a subprocess ({program})")()
        start_process(self, args, *rest, **kwargs)
    return init


@pytest.fixture(autouse=True)
def _quick_tests_stay_quick(request, monkeypatch):
    """A test without the `slow` mark that starts a process or compiles with inductor fails,
    so that `pytest -m "not slow"` stays the quick tier it says it is."""
    if request.node.get_closest_marker("slow"):
        return
    import torch._inductor.compile_fx as compile_fx

    monkeypatch.setattr(subprocess.Popen, "__init__", _no_python_processes(subprocess.Popen.__init__))
    monkeypatch.setattr(compile_fx, "compile_fx", _refused("torch.compile with inductor"))
