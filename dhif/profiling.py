"""Measurements: run times of the commands' methods, and the memory accounting that the
tests and the benchmarks share."""
import time

import torch


def timed_call(fn, *args, **kwargs):
    """(fn(*args, **kwargs), seconds), timed to the completion of a CUDA result's work."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    if isinstance(result, torch.Tensor) and result.is_cuda:
        torch.cuda.synchronize(result.device)
    return result, time.perf_counter() - started


def saved_tensor_bytes(fn) -> int:
    """Bytes of the tensors that autograd keeps for the backward while fn() runs, each
    storage counted once (parameters included when an op saves them)."""
    storages = {}

    def pack(tensor):
        storages[tensor.untyped_storage().data_ptr()] = tensor.untyped_storage().nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values())
