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

// Division by a divisor fixed for the whole launch. The int32 kernels multiply and shift
// (Granlund and Montgomery's method, as in ATen's IntDivider): a signed 32-bit division is
// about 20 instructions and locating a voxel takes three.
template <typename index_t>
struct Divider {
  index_t divisor;
  explicit Divider(index_t d) : divisor(d) {}
  DHIF_HOST_DEVICE index_t divide(index_t n) const { return n / divisor; }
};

// Exact for 0 <= n < 2^31 and 1 <= divisor < 2^31: then t + n < 2^32.
template <>
struct Divider<int32_t> {
  uint32_t multiplier;
  uint32_t shift;
  explicit Divider(int32_t d) {
    shift = 0;
    while ((uint64_t(1) << shift) < static_cast<uint64_t>(d)) ++shift;
    multiplier = static_cast<uint32_t>(((uint64_t(1) << 32) * ((uint64_t(1) << shift) - d)) / d + 1);
  }
  DHIF_HOST_DEVICE int32_t divide(int32_t n) const {
#ifdef __CUDA_ARCH__
    const uint32_t t = __umulhi(static_cast<uint32_t>(n), multiplier);
#else
    const uint32_t t = static_cast<uint32_t>((uint64_t(static_cast<uint32_t>(n)) * multiplier) >> 32);
#endif
    return static_cast<int32_t>((t + static_cast<uint32_t>(n)) >> shift);
  }
};

// locate() of adaptive_filter.h with the launch's dividers.
template <typename index_t>
struct VoxelLocator {
  Divider<index_t> items, strides, lengths;  // by N, by the axis stride, by the axis length
  explicit VoxelLocator(const FilterGeometry<index_t>& g)
      : items(g.voxels_per_item), strides(g.axis_stride), lengths(g.axis_len) {}

  DHIF_HOST_DEVICE Voxel<index_t> locate(const FilterGeometry<index_t>& g, index_t v) const {
    const index_t item = items.divide(v);
    const index_t q = v - item * g.voxels_per_item;
    const index_t line = strides.divide(q);
    return {v, item * g.taps * g.voxels_per_item + q, line - lengths.divide(line) * g.axis_len};
  }
};

// The first voxel of this thread and the grid stride, in the launch's index type.
template <typename index_t>
__device__ __forceinline__ index_t first_voxel() {
  return static_cast<index_t>(blockIdx.x) * static_cast<index_t>(blockDim.x) + static_cast<index_t>(threadIdx.x);
}

template <typename index_t>
__device__ __forceinline__ index_t grid_stride() {
  return static_cast<index_t>(gridDim.x) * static_cast<index_t>(blockDim.x);
}

// benchmarks/sass_report.py compiles the kernels with DHIF_SASS_COMMON_PATH to count the
// instructions of the common path: normalised taps, replicate padding, an interior voxel.
// The grid-stride loops are not unrolled, so that one trip of the loop is one voxel.
#ifdef DHIF_SASS_COMMON_PATH
#define DHIF_ASSUME_COMMON_PATH(g) ((g).normalize = true, (g).padding = Padding::kReplicate)
#define DHIF_ASSUME_BOTH_GRADIENTS(need_x, need_taps) (need_x = true, need_taps = true)
#else
#define DHIF_ASSUME_COMMON_PATH(g) ((void)0)
#define DHIF_ASSUME_BOTH_GRADIENTS(need_x, need_taps) ((void)0)
#endif

// Each thread computes y and inv_norm of voxel v, for v = its first voxel + k * grid stride.
template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
__global__ void adaptive_filter_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ taps,
                                               scalar_t* __restrict__ y, acc_t* __restrict__ inv_norm,
                                               FilterGeometry<index_t> g, VoxelLocator<index_t> locator,
                                               index_t n) {
  DHIF_ASSUME_COMMON_PATH(g);
  DHIF_NO_UNROLL
  for (index_t v = first_voxel<index_t>(); v < n; v += grid_stride<index_t>()) {
    const Voxel<index_t> p = locator.locate(g, v);
    acc_t inv;
    y[v] = static_cast<scalar_t>(filter_voxel<scalar_t, acc_t, kTaps>(x, taps, g, p, inv));
    inv_norm[v] = inv;
  }
}

// Each thread computes the K tap gradients of voxel v and the input gradient at v, each
// only when wanted (a uniform branch).
template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
__global__ void adaptive_filter_backward_kernel(const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x,
                                                const scalar_t* __restrict__ taps,
                                                const acc_t* __restrict__ inv_norm, scalar_t* __restrict__ grad_x,
                                                scalar_t* __restrict__ grad_taps, FilterGeometry<index_t> g,
                                                VoxelLocator<index_t> locator, index_t n, bool need_grad_x,
                                                bool need_grad_taps) {
  DHIF_ASSUME_COMMON_PATH(g);
  DHIF_ASSUME_BOTH_GRADIENTS(need_grad_x, need_grad_taps);
  DHIF_NO_UNROLL
  for (index_t v = first_voxel<index_t>(); v < n; v += grid_stride<index_t>()) {
    const Voxel<index_t> p = locator.locate(g, v);
    if (need_grad_taps) tap_gradient_voxel<scalar_t, acc_t, kTaps>(grad_y, x, taps, g, p, grad_taps);
    if (need_grad_x) {
#ifdef DHIF_SASS_COMMON_PATH
      grad_x[v] = static_cast<scalar_t>(input_gradient_interior<scalar_t, acc_t, kTaps>(grad_y, taps, inv_norm, g, p));
#else
      grad_x[v] = static_cast<scalar_t>(input_gradient_voxel<scalar_t, acc_t, kTaps>(grad_y, taps, inv_norm, g, p));
#endif
    }
  }
}

}  // namespace dhif
