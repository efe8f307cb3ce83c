// CUDA kernels of the adaptive filter: one thread per voxel (grid-stride, 64-bit
// indices), the arithmetic in the per-voxel functions of adaptive_filter.h that the CPU
// kernels also run. The backward gathers the input gradient: deterministic, no atomics.
#include <ATen/core/Tensor.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../adaptive_filter.h"
#include "../adaptive_filter_checks.h"

namespace dhif {
namespace {

constexpr int kThreads = 256;

// Enough blocks to fill the device a few times over; the grid-stride loop does the rest.
unsigned int grid_size(int64_t n) {
  const int64_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned int>(std::min<int64_t>(blocks, int64_t(1) << 20));
}

// Each thread computes y and inv_norm of one voxel v.
template <typename scalar_t, typename acc_t, int kTaps>
__global__ void adaptive_filter_forward_kernel(const scalar_t* __restrict__ x, const scalar_t* __restrict__ taps,
                                               scalar_t* __restrict__ y, acc_t* __restrict__ inv_norm,
                                               FilterGeometry g, int64_t n) {
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < n; v += int64_t(gridDim.x) * blockDim.x) {
    const Voxel p = locate(g, v);
    acc_t inv;
    y[v] = static_cast<scalar_t>(filter_voxel<scalar_t, acc_t, kTaps>(x, taps, g, p, inv));
    inv_norm[v] = inv;
  }
}

// Each thread computes the K tap gradients of voxel v and the input gradient at v.
template <typename scalar_t, typename acc_t, int kTaps>
__global__ void adaptive_filter_backward_kernel(const scalar_t* __restrict__ grad_y, const scalar_t* __restrict__ x,
                                                const scalar_t* __restrict__ taps,
                                                const acc_t* __restrict__ inv_norm, scalar_t* __restrict__ grad_x,
                                                scalar_t* __restrict__ grad_taps, FilterGeometry g, int64_t n) {
  for (int64_t v = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; v < n; v += int64_t(gridDim.x) * blockDim.x) {
    const Voxel p = locate(g, v);
    tap_gradient_voxel<scalar_t, acc_t, kTaps>(grad_y, x, taps, g, p, grad_taps);
    grad_x[v] = static_cast<scalar_t>(input_gradient_voxel<scalar_t, acc_t, kTaps>(grad_y, taps, inv_norm, g, p));
  }
}

std::tuple<at::Tensor, at::Tensor> adaptive_filter_forward_cuda(const at::Tensor& x_in, const at::Tensor& taps_in,
                                                                int64_t dim, const std::string& padding,
                                                                bool normalize) {
  const FilterGeometry g = check_filter_args(x_in, taps_in, dim, padding, normalize);
  TORCH_CHECK(x_in.is_cuda(), "adaptive_filter_forward_cuda: x must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  const at::Tensor taps = taps_in.contiguous();
  at::Tensor y = at::empty(x.sizes(), x.options());
  at::Tensor inv_norm = at::empty(x.sizes(), x.options().dtype(accumulate_type(x.scalar_type())));
  const int64_t n = x.numel();
  if (n == 0) return {y, inv_norm};

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "adaptive_filter_forward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_taps(g.taps, [&](auto taps_constant) {
      constexpr int kTaps = decltype(taps_constant)::value;
      adaptive_filter_forward_kernel<scalar_t, acc_t, kTaps><<<grid_size(n), kThreads, 0, stream>>>(
          x.const_data_ptr<scalar_t>(), taps.const_data_ptr<scalar_t>(), y.mutable_data_ptr<scalar_t>(),
          inv_norm.mutable_data_ptr<acc_t>(), g, n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {y, inv_norm};
}

std::tuple<at::Tensor, at::Tensor> adaptive_filter_backward_cuda(const at::Tensor& grad_y_in, const at::Tensor& x_in,
                                                                 const at::Tensor& taps_in,
                                                                 const at::Tensor& inv_norm_in, int64_t dim,
                                                                 const std::string& padding, bool normalize) {
  const FilterGeometry g = check_filter_args(x_in, taps_in, dim, padding, normalize);
  check_backward_args(grad_y_in, x_in, inv_norm_in);
  TORCH_CHECK(x_in.is_cuda(), "adaptive_filter_backward_cuda: x must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor grad_y = grad_y_in.contiguous();
  const at::Tensor x = x_in.contiguous();
  const at::Tensor taps = taps_in.contiguous();
  const at::Tensor inv_norm = inv_norm_in.to(accumulate_type(x.scalar_type())).contiguous();
  at::Tensor grad_x = at::empty(x.sizes(), x.options());
  at::Tensor grad_taps = at::empty(taps.sizes(), taps.options());
  const int64_t n = x.numel();
  if (n == 0) return {grad_x, grad_taps};

  const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "adaptive_filter_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    dispatch_taps(g.taps, [&](auto taps_constant) {
      constexpr int kTaps = decltype(taps_constant)::value;
      adaptive_filter_backward_kernel<scalar_t, acc_t, kTaps><<<grid_size(n), kThreads, 0, stream>>>(
          grad_y.const_data_ptr<scalar_t>(), x.const_data_ptr<scalar_t>(), taps.const_data_ptr<scalar_t>(),
          inv_norm.const_data_ptr<acc_t>(), grad_x.mutable_data_ptr<scalar_t>(),
          grad_taps.mutable_data_ptr<scalar_t>(), g, n);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return {grad_x, grad_taps};
}

}  // namespace

TORCH_LIBRARY_IMPL(dhif, CUDA, m) {
  m.impl("adaptive_filter_forward", &adaptive_filter_forward_cuda);
  m.impl("adaptive_filter_backward", &adaptive_filter_backward_cuda);
}

}  // namespace dhif
