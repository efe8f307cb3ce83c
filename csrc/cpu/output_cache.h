// Outputs of the CPU kernels from a cache of freed blocks.
//
// A training step allocates the same large outputs every time (32 MB of tap gradients per
// pass at the training batch). Fresh blocks of that size come from mmap, and the kernel
// zeroes every page on first touch: in a CPU training step that was more system time than
// the kernels' own. Blocks freed by the tensors that owned them are kept, by size, up to a
// cap, and handed to the next output of the same size, as the CUDA caching allocator does.
// DHIF_CPU_OUTPUT_CACHE_MB sets the cap (default 1024; 0 turns the cache off).
#pragma once

#include <ATen/core/Tensor.h>

namespace dhif::cpu {

at::Tensor cached_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

// Bytes held by the cache now (freed blocks waiting for reuse).
int64_t output_cache_bytes();

// Returns every cached block to the system.
void release_output_cache();

}  // namespace dhif::cpu
