"""The compiled kernels (dhif._C): loading them, what they were built with, and which
devices they serve. Importing this module never fails: LOAD_ERROR says why the kernels are
absent. Their fake kernels, autograd and batching rules are in registrations.py.
"""
import importlib.metadata
import warnings

import torch

try:
    from dhif import _C
    LOAD_ERROR = None
except ImportError as error:  # not built, or built against another torch
    _C = None
    LOAD_ERROR = error


def torch_built_against() -> str:
    """The torch version that dhif's kernels were built against: the compiled module's own
    record, or, when it cannot load, the version that the installed package pins."""
    if _C is not None:
        return _C.build_info()["torch"]
    try:
        pinned = [r for r in importlib.metadata.requires("dhif") or [] if r.replace(" ", "").startswith("torch==")]
    except importlib.metadata.PackageNotFoundError:  # a source tree, not installed
        return None
    return pinned[0].replace(" ", "").split("==")[1].split(";")[0] if pinned else None


def check_torch_version():
    """One warning when the installed torch is not the one the kernels were built against
    (the kernels may then fail to load, or misbehave), naming both and the remedy."""
    built, installed = torch_built_against(), torch.__version__
    if built is None or built == installed or (_C is None and built == installed.split("+")[0]):
        return
    problem = f"they failed to load ({LOAD_ERROR}), and dhif falls back" if _C is None else "they may misbehave"
    warnings.warn(f"dhif's kernels were built against torch {built}, but torch {installed} is installed: {problem}. "
                  "Rebuild them against this torch: pip install --no-build-isolation --force-reinstall --no-deps "
                  "<dhif's source folder or sdist>", RuntimeWarning, stacklevel=2)


FORWARD = "dhif::adaptive_filter_forward"
BACKWARD = "dhif::adaptive_filter_backward"


def fused_device_types() -> frozenset:
    """Device types ('cpu', 'cuda') that a compiled kernel serves on this machine."""
    if _C is None:
        return frozenset()
    types = set()
    if torch._C._dispatch_has_kernel_for_dispatch_key(FORWARD, "CPU"):
        types.add("cpu")
    if torch._C._dispatch_has_kernel_for_dispatch_key(FORWARD, "CUDA") and torch.cuda.is_available():
        types.add("cuda")
    return frozenset(types)


def build_info() -> dict:
    """How dhif._C was compiled ("torch": the torch it was built against, beside
    "torch_installed"), or {'loaded': False, 'error': ...} when it could not load."""
    if _C is None:
        return {"loaded": False, "error": str(LOAD_ERROR), "torch": torch_built_against(), "cuda": None,
                "openmp": False, "cuda_arch_list": "", "torch_installed": torch.__version__}
    return {"loaded": True, **_C.build_info(), "torch_installed": torch.__version__}
