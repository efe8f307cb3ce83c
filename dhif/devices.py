"""Where dhif runs: the device a user names (refused before any work when it is not usable
here), whether bf16 arithmetic is native on it, and how much memory inference may take."""
import os

import torch


def pick_device(name: str = "auto") -> torch.device:
    """The device to run on; ValueError, before any work, for one that is not usable here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name}: CUDA is not available on this machine "
                             f"(torch {torch.__version__}); use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise ValueError(f"--device {name}: dhif runs on cpu or cuda")
    return device


def has_native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix arithmetic is native here (Ampere and later GPUs; CPUs with
    AVX512-BF16 or AMX, where oneDNN's bf16 convolutions run about twice as fast as fp32)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu" and torch.backends.mkldnn.is_available():
        probe = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)  # private, so guarded
        return bool(probe is not None and probe())
    return False


def memory_budget(device: torch.device) -> int:
    """Bytes that whole-image inference may take by default: half of what is free on a GPU,
    a third of the memory available on the host."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0] // 2
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 3
