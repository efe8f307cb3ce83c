// The CPU kernels, one copy per instruction set. adaptive_filter_cpu_kernel.cpp is compiled
// once per capability (setup.py: DEFAULT everywhere, AVX2 and AVX512 on x86-64), each copy
// with that capability's flags and inside its own namespace, as ATen builds its kernels;
// adaptive_filter_cpu.cpp picks one at run time with at::get_cpu_capability(), which the
// ATEN_CPU_CAPABILITY environment variable overrides.
#pragma once

#include <string>

#include "../adaptive_filter_checks.h"

namespace dhif::cpu {

#define DHIF_DECLARE_CPU_KERNELS(capability)                                                              \
  namespace capability {                                                                                   \
  void adaptive_filter_forward_kernel(const ForwardBuffers& buffers);                                      \
  void adaptive_filter_backward_kernel(const BackwardBuffers& buffers, bool need_grad_x, bool need_grad_taps); \
  }

DHIF_DECLARE_CPU_KERNELS(DEFAULT)
#ifdef DHIF_CPU_KERNELS_AVX2
DHIF_DECLARE_CPU_KERNELS(AVX2)
#endif
#ifdef DHIF_CPU_KERNELS_AVX512
DHIF_DECLARE_CPU_KERNELS(AVX512)
#endif

#undef DHIF_DECLARE_CPU_KERNELS

// The capability whose kernels run ("DEFAULT", "AVX2" or "AVX512") and those built.
std::string cpu_kernel_capability();
std::string cpu_kernel_capabilities_built();

}  // namespace dhif::cpu
