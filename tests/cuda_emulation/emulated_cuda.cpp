// The CUDA kernels and their host launchers, compiled for the CPU and run block by block
// (tests/test_cuda_emulation.py). Nothing here is CUDA-specific but the launch itself.
#include <torch/extension.h>

#include "cuda_host_shim.h"
#include "cuda/adaptive_filter_launch.h"

namespace {

// Emulates kernel<<<grid, kThreads>>>(args...), the CUDA launchers' launch.
struct EmulatedLaunch {
  template <typename... KernelArgs, typename... Args>
  void operator()(void (*kernel)(KernelArgs...), unsigned int grid, Args... args) const {
    emulate_launch(kernel, grid, dhif::kThreads, args...);
  }
};

dhif::IndexWidth index_width(bool force_int64) {
  return force_int64 ? dhif::IndexWidth::k64 : dhif::IndexWidth::kNarrowest;
}

std::tuple<at::Tensor, at::Tensor> forward(const at::Tensor& x, const at::Tensor& taps, int64_t dim,
                                           const std::string& padding, bool normalize, bool force_int64,
                                           int64_t grid_blocks) {
  return dhif::launch_adaptive_filter_forward(x, taps, dim, padding, normalize, EmulatedLaunch{},
                                              index_width(force_int64), static_cast<unsigned int>(grid_blocks));
}

std::tuple<at::Tensor, at::Tensor> backward(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& taps,
                                            const at::Tensor& inv_norm, int64_t dim, const std::string& padding,
                                            bool normalize, bool force_int64, int64_t grid_blocks,
                                            bool need_grad_x, bool need_grad_taps) {
  return dhif::launch_adaptive_filter_backward(grad_y, x, taps, inv_norm, dim, padding, normalize,
                                               need_grad_x, need_grad_taps, EmulatedLaunch{},
                                               index_width(force_int64), static_cast<unsigned int>(grid_blocks));
}

// Which index type a launch of this many taps elements would take, as the launchers decide.
bool uses_int32(int64_t taps_numel, int64_t x_numel) {
  return dhif::indices_fit_in_int32(taps_numel, dhif::grid_size(x_numel));
}

// n / d through the int32 kernels' multiply-and-shift divider.
int64_t divide_int32(int64_t n, int64_t d) {
  return dhif::Divider<int32_t>(static_cast<int32_t>(d)).divide(static_cast<int32_t>(n));
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, module) {
  module.def("forward", &forward, "Emulated CUDA forward: (y, inv_norm)");
  module.def("backward", &backward, "Emulated CUDA backward: (grad_x, grad_taps)");
  module.def("uses_int32", &uses_int32, "Whether a launch would use 32-bit indices");
  module.def("grid_size", &dhif::grid_size, "Blocks the CUDA launchers start for n voxels");
  module.def("divide_int32", &divide_int32, "n / d by the int32 kernels' divider");
}
