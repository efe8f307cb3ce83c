// Host stand-ins for the CUDA built-ins that csrc/cuda/adaptive_filter_kernels.cuh uses, so
// that it compiles as plain C++. Exact for kernels without shared memory, barriers or warp
// operations: each thread's work then depends on nothing but its own indices.
#pragma once

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline

struct EmulatedDim3 {
  unsigned int x = 0, y = 1, z = 1;
};

inline thread_local EmulatedDim3 blockIdx, threadIdx, blockDim, gridDim;

// Runs every thread of every block of a one-dimensional grid in turn.
template <typename... KernelArgs, typename... Args>
void emulate_launch(void (*kernel)(KernelArgs...), unsigned int grid, unsigned int block, Args... args) {
  gridDim.x = grid;
  blockDim.x = block;
  for (unsigned int b = 0; b < grid; ++b) {
    blockIdx.x = b;
    for (unsigned int t = 0; t < block; ++t) {
      threadIdx.x = t;
      kernel(args...);
    }
  }
}
