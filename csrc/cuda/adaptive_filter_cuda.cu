// CUDA launchers of the adaptive filter: device guard, current stream, launch check. The
// kernels (one thread per voxel, grid-stride, 32-bit indices whenever they fit) are in
// adaptive_filter_kernels.cuh and the dispatch in adaptive_filter_launch.h, which the tests
// also run on the CPU. The backward gathers the input gradient: deterministic, no atomics.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "adaptive_filter_launch.h"

namespace dhif {
namespace {

// Starts a kernel on the current stream of the current device and checks the launch.
struct CudaLaunch {
  cudaStream_t stream;

  template <typename... KernelArgs, typename... Args>
  void operator()(void (*kernel)(KernelArgs...), unsigned int grid, Args... args) const {
    kernel<<<grid, kThreads, 0, stream>>>(args...);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
};

std::tuple<at::Tensor, at::Tensor> adaptive_filter_forward_cuda(const at::Tensor& x, const at::Tensor& taps,
                                                                int64_t dim, const std::string& padding,
                                                                bool normalize) {
  TORCH_CHECK(x.is_cuda(), "adaptive_filter_forward_cuda: x must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(x.device());
  return launch_adaptive_filter_forward(x, taps, dim, padding, normalize,
                                        CudaLaunch{c10::cuda::getCurrentCUDAStream()});
}

std::tuple<at::Tensor, at::Tensor> adaptive_filter_backward_cuda(const at::Tensor& grad_y, const at::Tensor& x,
                                                                 const at::Tensor& taps, const at::Tensor& inv_norm,
                                                                 int64_t dim, const std::string& padding,
                                                                 bool normalize, bool need_grad_x, bool need_grad_taps) {
  TORCH_CHECK(x.is_cuda(), "adaptive_filter_backward_cuda: x must be a CUDA tensor");
  const c10::cuda::CUDAGuard guard(x.device());
  return launch_adaptive_filter_backward(grad_y, x, taps, inv_norm, dim, padding, normalize, need_grad_x, need_grad_taps,
                                         CudaLaunch{c10::cuda::getCurrentCUDAStream()});
}

}  // namespace

TORCH_LIBRARY_IMPL(dhif, CUDA, m) {
  m.impl("adaptive_filter_forward", &adaptive_filter_forward_cuda);
  m.impl("adaptive_filter_backward", &adaptive_filter_backward_cuda);
}

}  // namespace dhif
