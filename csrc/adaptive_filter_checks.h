// Host-side argument checks, geometry and buffers, shared by the CPU and CUDA launchers so
// that every device rejects bad input with the same message and allocates the same outputs.
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>

#include <limits>
#include <string>
#include <type_traits>

#include "adaptive_filter.h"

namespace dhif {

inline Padding parse_padding(const std::string& padding) {
  if (padding == "replicate") return Padding::kReplicate;
  if (padding == "zeros") return Padding::kZeros;
  TORCH_CHECK(false, "adaptive_filter: unknown padding '", padding, "'; expected 'replicate' or 'zeros'");
}

// The kernels count taps in an int.
constexpr int64_t kMaxTaps = std::numeric_limits<int>::max();

// Checks x (B, C, H, W) against taps (B, K, C, H, W) and returns the filter geometry.
inline FilterGeometry<int64_t> check_filter_args(const at::Tensor& x, const at::Tensor& taps, int64_t dim,
                                        const std::string& padding, bool normalize) {
  TORCH_CHECK(x.dim() == 4, "adaptive_filter: x must be 4-D (B, C, H, W), got ", x.dim(), "-D of shape ",
              x.sizes());
  TORCH_CHECK(taps.dim() == 5, "adaptive_filter: taps must be 5-D (B, K, C, H, W), got ", taps.dim(),
              "-D of shape ", taps.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "adaptive_filter: x must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              x.scalar_type());
  TORCH_CHECK(x.scalar_type() == taps.scalar_type(), "adaptive_filter: x and taps must have the same dtype, got ",
              x.scalar_type(), " and ", taps.scalar_type());
  TORCH_CHECK(x.device() == taps.device(), "adaptive_filter: x and taps must be on the same device, got ",
              x.device(), " and ", taps.device());
  const int64_t K = taps.size(1);
  TORCH_CHECK(K % 2 == 1, "adaptive_filter: the number of taps K = taps.shape[1] must be odd, got ", K);
  TORCH_CHECK(K <= kMaxTaps, "adaptive_filter: the number of taps K = taps.shape[1] must be at most ", kMaxTaps,
              ", got ", K);
  TORCH_CHECK(taps.size(0) == x.size(0) && taps.size(2) == x.size(1) && taps.size(3) == x.size(2) &&
                  taps.size(4) == x.size(3),
              "adaptive_filter: taps of shape ", taps.sizes(), " do not match x of shape ", x.sizes(),
              "; expected (B, K, C, H, W) = (", x.size(0), ", K, ", x.size(1), ", ", x.size(2), ", ", x.size(3), ")");
  TORCH_CHECK(dim >= -3 && dim <= 3 && dim != 0 && dim != -4,
              "adaptive_filter: dim must be 1 (bands), 2 (rows) or 3 (columns), or -3..-1, got ", dim);
  const int64_t axis = dim < 0 ? dim + 4 : dim;
  FilterGeometry<int64_t> g;
  g.voxels_per_item = x.size(1) * x.size(2) * x.size(3);
  g.axis_len = x.size(axis);
  g.axis_stride = axis == 1 ? x.size(2) * x.size(3) : (axis == 2 ? x.size(3) : 1);
  g.axis = static_cast<int>(axis);
  g.taps = static_cast<int>(K);
  g.padding = parse_padding(padding);
  g.normalize = normalize;
  return g;
}

inline void check_backward_args(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& inv_norm) {
  TORCH_CHECK(grad_y.sizes() == x.sizes(), "adaptive_filter backward: grad_y of shape ", grad_y.sizes(),
              " does not match x of shape ", x.sizes());
  TORCH_CHECK(grad_y.scalar_type() == x.scalar_type() && grad_y.device() == x.device(),
              "adaptive_filter backward: grad_y must have x's dtype and device");
  TORCH_CHECK(inv_norm.sizes() == x.sizes() && inv_norm.device() == x.device(),
              "adaptive_filter backward: inv_norm must have x's shape and device");
}

// Calls body(std::integral_constant<int, kTaps>) with kTaps = kDhifTaps when K is that,
// else 0 (the kernels then loop over the runtime K).
template <typename Body>
void dispatch_taps(int taps, const Body& body) {
  if (taps == kDhifTaps) {
    body(std::integral_constant<int, kDhifTaps>{});
  } else {
    body(std::integral_constant<int, 0>{});
  }
}

// Calls body(scalar_t{}, std::integral_constant<int, kTaps>{}) for the tensors' dtype (the
// four floating types) and tap count (see dispatch_taps): the one type dispatch of every
// kernel launcher, CPU and CUDA.
template <typename Body>
void dispatch_dtype_and_taps(at::ScalarType dtype, int taps, const Body& body) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, "adaptive_filter", [&] {
    dispatch_taps(taps, [&](auto taps_constant) { body(scalar_t{}, taps_constant); });
  });
}

// Accumulation dtype: float32 for the half types, otherwise the input's own.
inline at::ScalarType accumulate_type(at::ScalarType t) {
  return t == at::kDouble ? at::kDouble : at::kFloat;
}

// Where a launcher's outputs and contiguous copies come from: at::empty on CUDA, whose
// caching allocator keeps freed blocks; the output pool on the CPU (cpu/output_pool.h).
using EmptyFn = at::Tensor (*)(at::IntArrayRef sizes, const at::TensorOptions& options);

inline at::Tensor plain_empty(at::IntArrayRef sizes, const at::TensorOptions& options) {
  return at::empty(sizes, options);
}

inline at::Tensor contiguous_in(EmptyFn empty, const at::Tensor& tensor) {
  if (tensor.is_contiguous()) return tensor;
  at::Tensor copy = empty(tensor.sizes(), tensor.options());
  copy.copy_(tensor);
  return copy;
}

// The forward's contiguous inputs and its outputs: y and the per-voxel inverse norm.
struct ForwardBuffers {
  FilterGeometry<int64_t> geometry;
  at::Tensor x, taps, y, inv_norm;
};

inline ForwardBuffers prepare_forward(const at::Tensor& x, const at::Tensor& taps, int64_t dim,
                                      const std::string& padding, bool normalize, EmptyFn empty = plain_empty) {
  ForwardBuffers b{check_filter_args(x, taps, dim, padding, normalize), contiguous_in(empty, x),
                   contiguous_in(empty, taps), {}, {}};
  b.y = empty(b.x.sizes(), b.x.options());
  b.inv_norm = empty(b.x.sizes(), b.x.options().dtype(accumulate_type(b.x.scalar_type())));
  return b;
}

// The backward's contiguous inputs and its outputs; an unwanted gradient is left empty.
struct BackwardBuffers {
  FilterGeometry<int64_t> geometry;
  at::Tensor grad_y, x, taps, inv_norm, grad_x, grad_taps;
};

inline BackwardBuffers prepare_backward(const at::Tensor& grad_y, const at::Tensor& x, const at::Tensor& taps,
                                        const at::Tensor& inv_norm, int64_t dim, const std::string& padding,
                                        bool normalize, bool need_grad_x, bool need_grad_taps,
                                        EmptyFn empty = plain_empty) {
  const FilterGeometry<int64_t> g = check_filter_args(x, taps, dim, padding, normalize);
  check_backward_args(grad_y, x, inv_norm);
  // grad_y is often an expanded scalar (y.sum().backward()): its copy is a workspace too.
  BackwardBuffers b{g, contiguous_in(empty, grad_y), contiguous_in(empty, x), contiguous_in(empty, taps),
                    contiguous_in(empty, inv_norm.to(accumulate_type(x.scalar_type()))), {}, {}};
  b.grad_x = empty(need_grad_x ? b.x.sizes() : at::IntArrayRef{0}, b.x.options());
  b.grad_taps = empty(need_grad_taps ? b.taps.sizes() : at::IntArrayRef{0}, b.taps.options());
  return b;
}

}  // namespace dhif
