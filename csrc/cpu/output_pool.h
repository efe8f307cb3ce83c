// The op's large CPU outputs and workspaces, served from blocks that its earlier outputs
// freed. glibc returns every freed block above its mmap threshold (32 MiB at most) to the
// kernel and trims the top of its heap, so that in a plain Python process each call's
// outputs were faulted in and zeroed again, page by page: most of a forward + backward at
// (1, 31, 512, 512). The pool keeps what the op's tensors free for the next call's outputs
// of about the same size and changes nothing else in the process. The blocks it caches
// never add up to more than the most bytes its tensors held at once (the oldest freed go
// first): a training step's outputs of several sizes are all reused, where a bound on
// cached + held would have to give some back on every step. Blocks under 1 MiB, and every
// block when DHIF_OUTPUT_POOL=0, come from torch's CPU allocator as before.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <cstdint>

namespace dhif::cpu {

// at::empty(sizes, options) for a CPU tensor, contiguous, from the pool.
at::Tensor pooled_empty(at::IntArrayRef sizes, const at::TensorOptions& options);

struct OutputPoolStats {
  int64_t in_use;  // bytes of pooled blocks held by tensors
  int64_t cached;  // bytes of freed blocks kept for reuse
  int64_t peak;    // the most bytes held by tensors at once; cached never exceeds it
};

OutputPoolStats output_pool_stats();

// Gives every cached block back to the system (the peak restarts at the bytes in use).
void release_output_pool();

}  // namespace dhif::cpu
