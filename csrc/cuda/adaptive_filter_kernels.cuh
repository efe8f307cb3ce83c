// CUDA kernel bodies of the adaptive filter, and the launch geometry. Nothing here needs a
// CUDA header: adaptive_filter_cuda.cu compiles it with nvcc, and the tests compile it as
// host C++ with stand-ins for the CUDA built-ins (tests/cuda_emulation/), so that every
// test run executes these exact bodies, grid-stride loop included.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "../adaptive_filter.h"

namespace dhif {

constexpr int kThreads = 256;

// Enough blocks to fill the device a few times over; the grid-stride loop does the rest.
inline unsigned int grid_size(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::min<int64_t>(std::max<int64_t>(blocks, 1), int64_t(1) << 20));
}

// 32-bit indices serve a launch when the largest index (taps, K times x) plus one grid
// stride still fits: the grid-stride loop computes v + stride before it tests v < n.
inline bool indices_fit_in_int32(int64_t largest_numel, unsigned int grid) {
  return largest_numel + int64_t(grid) * kThreads <= std::numeric_limits<int32_t>::max();
}

// The first voxel of this thread and the grid stride, in the launch's index type.
template <typename index_t>
__device__ __forceinline__ index_t first_voxel() {
  return static_cast<index_t>(blockIdx.x) * static_cast<index_t>(blockDim.x) + static_cast<index_t>(threadIdx.x);
}

template <typename index_t>
__device__ __forceinline__ index_t grid_stride() {
  return static_cast<index_t>(gridDim.x) * static_cast<index_t>(blockDim.x);
}

// Each thread computes y and inv_norm of voxel v, for v = its first voxel + k * grid stride.
template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
__global__ void adaptive_filter_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ taps,
                                               scalar_t* __restrict__ y, acc_t* __restrict__ inv_norm,
                                               FilterGeometry<index_t> g, index_t n) {
  for (index_t v = first_voxel<index_t>(); v < n; v += grid_stride<index_t>()) {
    const Voxel<index_t> p = locate(g, v);
    acc_t inv;
    y[v] = static_cast<scalar_t>(filter_voxel<scalar_t, acc_t, kTaps>(x, taps, g, p, inv));
    inv_norm[v] = inv;
  }
}

// Each thread computes the K tap gradients of voxel v and the input gradient at v.
template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
__global__ void adaptive_filter_backward_kernel(const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x,
                                                const scalar_t* __restrict__ taps,
                                                const acc_t* __restrict__ inv_norm, scalar_t* __restrict__ grad_x,
                                                scalar_t* __restrict__ grad_taps, FilterGeometry<index_t> g,
                                                index_t n) {
  for (index_t v = first_voxel<index_t>(); v < n; v += grid_stride<index_t>()) {
    const Voxel<index_t> p = locate(g, v);
    tap_gradient_voxel<scalar_t, acc_t, kTaps>(grad_y, x, taps, g, p, grad_taps);
    grad_x[v] = static_cast<scalar_t>(input_gradient_voxel<scalar_t, acc_t, kTaps>(grad_y, taps, inv_norm, g, p));
  }
}

}  // namespace dhif
