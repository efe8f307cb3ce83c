// torch's CPU allocator, with freed large blocks kept for reuse.
//
// glibc hands blocks above its mmap threshold (at most 32 MiB) back to the kernel when they
// are freed, and blocks from posix_memalign, which torch uses, are not reused for the next
// request of the same size; the kernel then zeroes every page again on first touch. In
// tiled inference with the paper's model that was a third of the run's time, spent in the
// kernel, and in a CPU training step more system time than the filter's own. This
// allocator wraps torch's: blocks of 1 MiB and more, once freed, are kept by size and
// handed to the next request they fit (at most 1/8 larger), as the CUDA caching allocator
// does. A request that none fits first returns cached blocks to the system until what the
// process holds (in use + cached) is no more than the most it has had in use at once, so
// peak memory stays that of the uncached allocator.
//
// Installed when dhif._C is imported (dhif.ops), unless DHIF_CPU_CACHE=0.
// DHIF_CPU_CACHE_MB caps the cached bytes (default: no cap beyond the rule above).
#pragma once

#include <cstdint>

namespace dhif::cpu {

// Makes the cache torch's CPU allocator; returns false where DHIF_CPU_CACHE=0 said not to.
bool install_block_cache();

// Bytes of freed blocks waiting for reuse, and the most bytes in large blocks the process
// has had in use at once (since the last reset_block_cache_peak, which makes it those in
// use now: a measurement of one piece of work starts there).
int64_t block_cache_bytes();
int64_t block_cache_peak_in_use();
void reset_block_cache_peak();

// Returns every cached block to the system.
void release_block_cache();

}  // namespace dhif::cpu
