"""dhif: DHIF-Net hyperspectral image fusion with fused spatio-spectral filter kernels.

Importing dhif changes nothing process-wide; the `dhif` commands call keep_freed_memory()
when they start, and a Python user may (see the README, "Inference: tiles, precision and
memory")."""
__version__ = "0.1.0"

from .memory import keep_freed_memory  # noqa: E402
from .ops import adaptive_filter, available_impls, build_info, spatio_spectral_filter  # noqa: E402

__all__ = ["adaptive_filter", "spatio_spectral_filter", "available_impls", "build_info", "keep_freed_memory",
           "__version__"]
