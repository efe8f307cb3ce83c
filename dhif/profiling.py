"""Memory accounting that the tests and the benchmarks share."""
import torch


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
