// Host side of the CUDA kernels: argument checks, outputs, dtype, tap-count and index-type
// dispatch, grid size. `launch(kernel, grid, args...)` starts a kernel: with <<<>>> on the
// current stream in adaptive_filter_cuda.cu, block by block on the CPU in the tests'
// emulation, so both run this same code.
#pragma once

#include <ATen/OpMathType.h>
#include <ATen/core/Tensor.h>

#include <string>
#include <tuple>
#include <type_traits>

#include "../adaptive_filter_checks.h"
#include "adaptive_filter_kernels.cuh"

namespace dhif {

// What the kernels may assume of the index width: the narrowest that fits, or always 64-bit
// (the tests force it on small tensors so that both paths run).
enum class IndexWidth { kNarrowest, k64 };

// Calls body(index_t{}) with int32_t when the launch allows it, else int64_t.
template <typename Body>
void dispatch_index_type(bool use_int32, const Body& body) {
  if (use_int32) {
    body(int32_t{});
  } else {
    body(int64_t{});
  }
}

// The grid of a launch over n voxels (grid_blocks = 0: grid_size(n); otherwise that many
// blocks, which the emulation uses so that the grid-stride loop repeats) and its types:
// calls body(scalar_t{}, std::integral_constant<int, kTaps>{}, geometry, locator, grid) with
// the tensors' dtype, the tap count (see dispatch_taps) and the narrowest index type that
// `width` allows for the launch.
template <typename Body>
void dispatch_launch(const at::Tensor& taps, const FilterGeometry<int64_t>& g, int64_t n, IndexWidth width,
                     unsigned int grid_blocks, const Body& body) {
  const unsigned int grid = grid_blocks ? grid_blocks : grid_size(n);
  const bool use_int32 = width == IndexWidth::kNarrowest && indices_fit_in_int32(taps.numel(), grid);
  dispatch_dtype_and_taps(taps.scalar_type(), g.taps, [&](auto scalar, auto taps_constant) {
    dispatch_index_type(use_int32, [&](auto index_value) {
      using index_t = decltype(index_value);
      const FilterGeometry<index_t> geometry = g.with_index_type<index_t>();
      body(scalar, taps_constant, geometry, VoxelLocator<index_t>(geometry), grid);
    });
  });
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> launch_adaptive_filter_forward(const at::Tensor& x_in, const at::Tensor& taps_in,
                                                                  int64_t dim, const std::string& padding,
                                                                  bool normalize, const Launch& launch,
                                                                  IndexWidth width = IndexWidth::kNarrowest,
                                                                  unsigned int grid_blocks = 0) {
  const ForwardBuffers buffers = prepare_forward(x_in, taps_in, dim, padding, normalize);
  const FilterGeometry<int64_t>& g = buffers.geometry;
  const at::Tensor &x = buffers.x, &taps = buffers.taps, &y = buffers.y, &inv_norm = buffers.inv_norm;
  const int64_t n = x.numel();
  if (n == 0) return {y, inv_norm};

  dispatch_launch(taps, g, n, width, grid_blocks, [&](auto scalar, auto taps_constant, const auto& geometry,
                                                      const auto& locator, unsigned int grid) {
    using scalar_t = decltype(scalar);
    using acc_t = at::opmath_type<scalar_t>;
    using index_t = decltype(geometry.axis_len);
    launch(adaptive_filter_forward_kernel<scalar_t, acc_t, decltype(taps_constant)::value, index_t>, grid,
           x.const_data_ptr<scalar_t>(), taps.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(),
           inv_norm.mutable_data_ptr<acc_t>(), geometry, locator, static_cast<index_t>(n));
  });
  return {y, inv_norm};
}

template <typename Launch>
std::tuple<at::Tensor, at::Tensor> launch_adaptive_filter_backward(
    const at::Tensor& grad_y_in, const at::Tensor& x_in, const at::Tensor& taps_in, const at::Tensor& inv_norm_in,
    int64_t dim, const std::string& padding, bool normalize, bool need_grad_x, bool need_grad_taps, const Launch& launch,
    IndexWidth width = IndexWidth::kNarrowest, unsigned int grid_blocks = 0) {
  const BackwardBuffers buffers = prepare_backward(grad_y_in, x_in, taps_in, inv_norm_in, dim, padding, normalize,
                                                   need_grad_x, need_grad_taps);
  const FilterGeometry<int64_t>& g = buffers.geometry;
  const at::Tensor &grad_y = buffers.grad_y, &x = buffers.x, &taps = buffers.taps, &inv_norm = buffers.inv_norm;
  const at::Tensor &grad_x = buffers.grad_x, &grad_taps = buffers.grad_taps;
  const int64_t n = x.numel();
  if (n == 0 || !(need_grad_x || need_grad_taps)) return {grad_x, grad_taps};

  dispatch_launch(taps, g, n, width, grid_blocks, [&](auto scalar, auto taps_constant, const auto& geometry,
                                                      const auto& locator, unsigned int grid) {
    using scalar_t = decltype(scalar);
    using acc_t = at::opmath_type<scalar_t>;
    using index_t = decltype(geometry.axis_len);
    launch(adaptive_filter_backward_kernel<scalar_t, acc_t, decltype(taps_constant)::value, index_t>, grid,
           grad_y.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), taps.const_data_ptr<scalar_t>(),
           inv_norm.const_data_ptr<acc_t>(), grad_x.mutable_data_ptr<scalar_t>(),
           grad_taps.mutable_data_ptr<scalar_t>(), geometry, locator, static_cast<index_t>(n), need_grad_x,
           need_grad_taps);
  });
  return {grad_x, grad_taps};
}

}  // namespace dhif
