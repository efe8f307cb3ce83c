// Memory statistics for torch's CPU tensors, as torch.cuda.max_memory_allocated gives for
// CUDA: the bytes in blocks of 1 MiB and more (what a network's activations are made of) in
// use now and at most since the last reset. `--tile auto` sizes its tiles from them. They
// count from install_memory_stats() on, which wraps torch's CPU allocator for the rest of
// the process (nothing else in dhif does): dhif calls it where it measures, never at import.
// Smaller blocks pass through uncounted; the op's output pool reports its own blocks.
#pragma once

#include <cstddef>
#include <cstdint>

namespace dhif::cpu {

void install_memory_stats();
bool memory_stats_installed();
int64_t memory_in_use();
int64_t memory_peak();
// Makes the peak the bytes in use now: a measurement of one piece of work starts here.
void reset_memory_peak();

// Blocks that reach tensors without torch's CPU allocator (output_pool.h). count_allocated
// is false before install_memory_stats(); only a block it counted is given to count_freed.
bool count_allocated(size_t bytes);
void count_freed(size_t bytes);

}  // namespace dhif::cpu
