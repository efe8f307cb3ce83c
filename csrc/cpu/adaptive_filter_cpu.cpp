// CPU kernels of the adaptive filter: parallel over rows (b, c, h) of W voxels; each voxel
// is computed by the shared per-voxel functions in adaptive_filter.h, which the CUDA
// kernels also run. A row is located once and then stepped through, so the inner loop
// does no integer division.
#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/OpMathType.h>
#include <torch/library.h>

#include <algorithm>
#include <tuple>

#include "../adaptive_filter.h"
#include "../adaptive_filter_checks.h"

namespace dhif {
namespace {

// Voxels per parallel task: large enough to amortise scheduling, small enough to balance.
constexpr int64_t kGrainVoxels = 1 << 14;

// Calls visit(Voxel) for every voxel of x in rows of `width` voxels split across threads.
// The voxels of a row are independent (each writes only its own outputs), which
// `omp simd` tells the compiler so that it vectorises the shared per-voxel functions
// where the row has one position along the filtered axis (rows and bands).
template <typename Visit>
void for_each_voxel(const FilterGeometry<int64_t>& g, int64_t numel, int64_t width, const Visit& visit) {
  const int64_t rows = numel / width;
  const bool along_row = g.axis == 3;  // filtering columns: the position is w
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrainVoxels / width), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const Voxel<int64_t> first = locate(g, row * width);
      if (along_row) {
        for (int64_t w = 0; w < width; ++w) visit(Voxel<int64_t>{first.x_index + w, first.tap_index + w, w});
      } else {  // one position for the whole row: contiguous loads, vectorised
#pragma omp simd
        for (int64_t w = 0; w < width; ++w) visit(Voxel<int64_t>{first.x_index + w, first.tap_index + w, first.pos});
      }
    }
  });
}

// The input-gradient gather by row: interior voxels through the branch-free interior
// function (vectorised), the few near the ends of the axis through the general one.
template <typename Interior, typename Border>
void for_each_voxel_split(const FilterGeometry<int64_t>& g, int64_t numel, int64_t width, const Interior& interior,
                          const Border& border) {
  const int64_t rows = numel / width;
  const int64_t radius = g.taps / 2;
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrainVoxels / width), [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const Voxel<int64_t> first = locate(g, row * width);
      if (g.axis != 3) {  // one position for the whole row
        if (is_interior<0>(g, first.pos)) {
#pragma omp simd
          for (int64_t w = 0; w < width; ++w) interior(Voxel<int64_t>{first.x_index + w, first.tap_index + w, first.pos});
        } else {
          for (int64_t w = 0; w < width; ++w) border(Voxel<int64_t>{first.x_index + w, first.tap_index + w, first.pos});
        }
        continue;
      }
      const int64_t lo = std::min<int64_t>(radius, width), hi = std::max<int64_t>(lo, width - radius);
      for (int64_t w = 0; w < lo; ++w) border(Voxel<int64_t>{first.x_index + w, first.tap_index + w, w});
#pragma omp simd
      for (int64_t w = lo; w < hi; ++w) interior(Voxel<int64_t>{first.x_index + w, first.tap_index + w, w});
      for (int64_t w = hi; w < width; ++w) border(Voxel<int64_t>{first.x_index + w, first.tap_index + w, w});
    }
  });
}

// Voxels whose tap-gradient coefficients are staged before their K planes are written.
constexpr int64_t kTapBlock = 64;

// The tap gradients, written one tap plane at a time for a block of voxels of a row. With
// C * H * W a multiple of 1024 (512 x 512 images), the K tap planes and K gradient planes
// sit a multiple of 4 KiB apart; writing all K of them voxel by voxel puts 2K streams in
// the same cache sets and halves the speed. Each value is the shared per-voxel maths.
template <typename scalar_t, typename acc_t, int kTaps>
void tap_gradients_by_plane(const scalar_t* grad_y, const scalar_t* x, const scalar_t* taps, const FilterGeometry<int64_t>& g,
                            int64_t numel, int64_t width, scalar_t* grad_taps) {
  const int K = tap_count<kTaps>(g);
  const int64_t rows = numel / width;
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrainVoxels / width), [&](int64_t begin, int64_t end) {
    TapGradientCoefficients<acc_t> coefficients[kTapBlock];
    for (int64_t row = begin; row < end; ++row) {
      const Voxel<int64_t> first = locate(g, row * width);
      const auto voxel = [&](int64_t w) {
        return Voxel<int64_t>{first.x_index + w, first.tap_index + w, g.axis == 3 ? w : first.pos};
      };
      for (int64_t start = 0; start < width; start += kTapBlock) {
        const int64_t count = std::min(kTapBlock, width - start);
        for (int64_t j = 0; j < count; ++j) {
          coefficients[j] = tap_gradient_coefficients<scalar_t, acc_t, kTaps>(grad_y, x, taps, g, voxel(start + j));
        }
        for (int i = 0; i < K; ++i) {
          for (int64_t j = 0; j < count; ++j) {
            const Voxel<int64_t> p = voxel(start + j);
            grad_taps[p.tap_index + i * g.voxels_per_item] =
                static_cast<scalar_t>(tap_gradient_value<scalar_t, acc_t>(coefficients[j], x, taps, g, p, i, K / 2));
          }
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor> adaptive_filter_forward_cpu(const at::Tensor& x_in, const at::Tensor& taps_in,
                                                               int64_t dim, const std::string& padding,
                                                               bool normalize) {
  const ForwardBuffers buffers = prepare_forward(x_in, taps_in, dim, padding, normalize);
  const FilterGeometry<int64_t>& g = buffers.geometry;
  const at::Tensor &x = buffers.x, &taps = buffers.taps, &y = buffers.y, &inv_norm = buffers.inv_norm;
  const int64_t n = x.numel();
  if (n == 0) return {y, inv_norm};

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "adaptive_filter_forward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* tp = taps.const_data_ptr<scalar_t>();
    scalar_t* yp = y.mutable_data_ptr<scalar_t>();
    acc_t* np = inv_norm.mutable_data_ptr<acc_t>();
    dispatch_taps(g.taps, [&](auto taps_constant) {
      constexpr int kTaps = decltype(taps_constant)::value;
      for_each_voxel(g, n, x.size(3), [&](const Voxel<int64_t>& p) {
        acc_t inv;
        yp[p.x_index] = static_cast<scalar_t>(filter_voxel<scalar_t, acc_t, kTaps>(xp, tp, g, p, inv));
        np[p.x_index] = inv;
      });
    });
  });
  return {y, inv_norm};
}

std::tuple<at::Tensor, at::Tensor> adaptive_filter_backward_cpu(const at::Tensor& grad_y_in, const at::Tensor& x_in,
                                                                const at::Tensor& taps_in,
                                                                const at::Tensor& inv_norm_in, int64_t dim,
                                                                const std::string& padding, bool normalize,
                                                                bool need_grad_x, bool need_grad_taps) {
  const BackwardBuffers buffers = prepare_backward(grad_y_in, x_in, taps_in, inv_norm_in, dim, padding, normalize,
                                                   need_grad_x, need_grad_taps);
  const FilterGeometry<int64_t>& g = buffers.geometry;
  const at::Tensor &grad_y = buffers.grad_y, &x = buffers.x, &taps = buffers.taps, &inv_norm = buffers.inv_norm;
  const at::Tensor &grad_x = buffers.grad_x, &grad_taps = buffers.grad_taps;
  const int64_t n = x.numel();
  if (n == 0) return {grad_x, grad_taps};

  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "adaptive_filter_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const scalar_t* gp = grad_y.const_data_ptr<scalar_t>();
    const scalar_t* xp = x.const_data_ptr<scalar_t>();
    const scalar_t* tp = taps.const_data_ptr<scalar_t>();
    const acc_t* np = inv_norm.const_data_ptr<acc_t>();
    scalar_t* gxp = grad_x.mutable_data_ptr<scalar_t>();
    scalar_t* gtp = grad_taps.mutable_data_ptr<scalar_t>();
    dispatch_taps(g.taps, [&](auto taps_constant) {
      constexpr int kTaps = decltype(taps_constant)::value;
      // Tap gradients, then the input-gradient gather: two sweeps with few streams each.
      if (need_grad_taps) tap_gradients_by_plane<scalar_t, acc_t, kTaps>(gp, xp, tp, g, n, x.size(3), gtp);
      if (need_grad_x) for_each_voxel_split(
          g, n, x.size(3),
          [&](const Voxel<int64_t>& p) {
            gxp[p.x_index] = static_cast<scalar_t>(input_gradient_interior<scalar_t, acc_t, kTaps>(gp, tp, np, g, p));
          },
          [&](const Voxel<int64_t>& p) {
            gxp[p.x_index] = static_cast<scalar_t>(input_gradient_border<scalar_t, acc_t, kTaps>(gp, tp, np, g, p));
          });
    });
  });
  return {grad_x, grad_taps};
}

}  // namespace

TORCH_LIBRARY_IMPL(dhif, CPU, m) {
  m.impl("adaptive_filter_forward", &adaptive_filter_forward_cpu);
  m.impl("adaptive_filter_backward", &adaptive_filter_backward_cpu);
}

}  // namespace dhif
