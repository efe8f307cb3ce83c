// The op schemas (one per op, registered once) and the Python module dhif._C.
// Kernels are registered per device in cpu/ and cuda/; autograd, fake kernels and batching
// rules in dhif/ops/registrations.py.
#include <torch/extension.h>
#include <torch/library.h>

#include <string>

#include "cpu/adaptive_filter_cpu_kernel.h"
#include "cpu/memory_bindings.h"

TORCH_LIBRARY(dhif, m) {
  // y = filter of x with taps along dim; inv_norm = 1 / max(||taps||, eps) per voxel
  // (ones when normalize is false), kept for the backward pass.
  m.def("adaptive_filter_forward(Tensor x, Tensor taps, int dim, str padding, bool normalize) -> (Tensor, Tensor)");
  // (grad_x, grad_taps); an unwanted one (need_grad_* false) is returned empty and not
  // computed.
  m.def(
      "adaptive_filter_backward(Tensor grad_y, Tensor x, Tensor taps, Tensor inv_norm, int dim, str padding, "
      "bool normalize, bool need_grad_x, bool need_grad_taps) -> (Tensor, Tensor)");
}

namespace {

#ifndef DHIF_TORCH_VERSION
#define DHIF_TORCH_VERSION "unknown"
#endif
#ifndef DHIF_CUDA_VERSION
#define DHIF_CUDA_VERSION ""
#endif
#ifndef DHIF_CUDA_ARCH_LIST
#define DHIF_CUDA_ARCH_LIST ""
#endif

py::dict build_info() {
  py::dict info;
  info["torch"] = std::string(DHIF_TORCH_VERSION);
  const std::string cuda = DHIF_CUDA_VERSION;
  info["cuda"] = cuda.empty() ? py::object(py::none()) : py::object(py::str(cuda));
  info["cuda_arch_list"] = std::string(DHIF_CUDA_ARCH_LIST);
  info["cpu_capabilities_built"] = dhif::cpu::cpu_kernel_capabilities_built();
  info["cpu_capability"] = dhif::cpu::cpu_kernel_capability();
#ifdef _OPENMP
  info["openmp"] = true;
#else
  info["openmp"] = false;
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(_C, module) {
  module.def("build_info", &build_info, "How this extension was compiled.");
  dhif::cpu::bind_memory(module);
}
