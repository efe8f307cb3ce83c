// Memory statistics for torch's CPU tensors, as torch.cuda.max_memory_allocated gives for
// CUDA: an allocator that wraps torch's CPU allocator and counts the bytes in blocks of
// 1 MiB and more (what a network's activations are made of) in use now and at most since
// the last reset. `dhif test` and `dhif fuse` size their tiles from it. Installed when
// dhif._C is imported; smaller blocks pass through uncounted.
#pragma once

#include <cstdint>

namespace dhif::cpu {

void install_memory_stats();
int64_t memory_in_use();
int64_t memory_peak();
// Makes the peak the bytes in use now: a measurement of one piece of work starts here.
void reset_memory_peak();

}  // namespace dhif::cpu
