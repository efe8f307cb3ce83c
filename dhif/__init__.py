"""dhif: DHIF-Net hyperspectral image fusion with fused spatio-spectral filter kernels."""
__version__ = "0.1.0"

from .memory import keep_freed_memory  # noqa: E402

KEEPS_FREED_MEMORY = keep_freed_memory()  # for every dhif command and the Python API

from .ops import adaptive_filter, available_impls, build_info, spatio_spectral_filter  # noqa: E402

__all__ = ["adaptive_filter", "spatio_spectral_filter", "available_impls", "build_info", "__version__"]
