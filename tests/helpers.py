"""Devices, dtypes, tolerances and data paths shared by the tests (a plain module, not
conftest, so that `pytest tests benchmarks` does not confuse two modules named conftest)."""
import os
from pathlib import Path

import pytest
import torch

from dhif.ops import available_impls, build_info

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
FLOAT_DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]

# (rtol, atol) of the fused kernels against a float64 reference on the same inputs. Half
# types accumulate in float32, so the error is about one rounding of the output.
TOLERANCES = {
    torch.float64: (1e-10, 1e-12),
    torch.float32: (1e-5, 1e-5),
    torch.float16: (4e-3, 4e-3),
    torch.bfloat16: (2e-2, 2e-2),
}

# The real data shipped beside the project for development; a user's clone has none.
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
CAVE_DIR = SHARED_DATA / "cave" / "complete_ms_data"


def require_fused(device: str) -> None:
    """Skip a fused-kernel test where no kernel is compiled, unless DHIF_REQUIRE_FUSED=1
    (set by .ci/run), in which case a missing kernel fails the test."""
    if "fused" in available_impls(device):
        return
    message = f"no fused kernel for {device}: {build_info().get('error', 'not compiled for this device')}"
    if os.environ.get("DHIF_REQUIRE_FUSED") == "1" and device == "cpu":
        pytest.fail(message)
    pytest.skip(message)
