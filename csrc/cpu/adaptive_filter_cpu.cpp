// The CPU implementation of the op: checks and buffers (adaptive_filter_checks.h), then the
// kernels built for the best instruction set this CPU has (adaptive_filter_cpu_kernel.h).
#include <ATen/ATen.h>
#include <ATen/Version.h>
#include <torch/library.h>

#include <tuple>

#include "adaptive_filter_cpu_kernel.h"
#include "output_pool.h"

namespace dhif::cpu {
namespace {

struct Kernels {
  const char* capability;
  void (*forward)(const ForwardBuffers&);
  void (*backward)(const BackwardBuffers&, bool, bool);
};

#define DHIF_KERNELS(capability) \
  Kernels { #capability, &capability::adaptive_filter_forward_kernel, &capability::adaptive_filter_backward_kernel }

// Chosen once, like ATen's own kernels: the best capability built that at::get_cpu_capability()
// allows (ATEN_CPU_CAPABILITY=default|avx2|avx512 lowers it).
const Kernels& kernels() {
  static const Kernels chosen = [] {
    const std::string allowed = at::get_cpu_capability();
#ifdef DHIF_CPU_KERNELS_AVX512
    if (allowed == "AVX512") return DHIF_KERNELS(AVX512);
#endif
#ifdef DHIF_CPU_KERNELS_AVX2
    if (allowed == "AVX2" || allowed == "AVX512") return DHIF_KERNELS(AVX2);
#endif
    return DHIF_KERNELS(DEFAULT);
  }();
  return chosen;
}

std::tuple<at::Tensor, at::Tensor> adaptive_filter_forward_cpu(const at::Tensor& x, const at::Tensor& taps, int64_t dim,
                                                               const std::string& padding, bool normalize) {
  const ForwardBuffers buffers = prepare_forward(x, taps, dim, padding, normalize, &pooled_empty);
  if (buffers.x.numel() == 0) return {buffers.y, buffers.inv_norm};
  kernels().forward(buffers);
  return {buffers.y, buffers.inv_norm};
}

std::tuple<at::Tensor, at::Tensor> adaptive_filter_backward_cpu(const at::Tensor& grad_y, const at::Tensor& x,
                                                                const at::Tensor& taps, const at::Tensor& inv_norm,
                                                                int64_t dim, const std::string& padding, bool normalize,
                                                                bool need_grad_x, bool need_grad_taps) {
  const BackwardBuffers buffers =
      prepare_backward(grad_y, x, taps, inv_norm, dim, padding, normalize, need_grad_x, need_grad_taps,
                       &pooled_empty);
  if (buffers.x.numel() == 0 || !(need_grad_x || need_grad_taps)) return {buffers.grad_x, buffers.grad_taps};
  kernels().backward(buffers, need_grad_x, need_grad_taps);
  return {buffers.grad_x, buffers.grad_taps};
}

}  // namespace

std::string cpu_kernel_capability() { return kernels().capability; }

std::string cpu_kernel_capabilities_built() {
  std::string built = "DEFAULT";
#ifdef DHIF_CPU_KERNELS_AVX2
  built += " AVX2";
#endif
#ifdef DHIF_CPU_KERNELS_AVX512
  built += " AVX512";
#endif
  return built;
}

TORCH_LIBRARY_IMPL(dhif, CPU, m) {
  m.impl("adaptive_filter_forward", &adaptive_filter_forward_cpu);
  m.impl("adaptive_filter_backward", &adaptive_filter_backward_cpu);
}

}  // namespace dhif::cpu
