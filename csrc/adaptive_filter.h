// Per-voxel arithmetic of the adaptive filter, shared by the CPU and CUDA kernels.
//
// Notation: x is (B, C, H, W), taps is (B, K, C, H, W), both contiguous. A voxel is
// addressed by its linear index v into x; the filtered axis has length `axis_len` and
// element stride `axis_stride` in x; tap i of voxel v sits at taps[b * K * N + i * N + q]
// with N = C * H * W, b = v / N, q = v % N.
// Everything here is plain arithmetic on raw pointers so that the CPU build runs exactly
// the code that the CUDA kernels run.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define DHIF_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DHIF_HOST_DEVICE inline
#endif

namespace dhif {

enum class Padding : int { kReplicate = 0, kZeros = 1 };

// F.normalize's eps: taps whose L2 norm is below it are divided by eps instead.
constexpr double kNormEps = 1e-12;

// The DHIF-Net tap count, compiled as a constant so that its loops unroll; other K run
// the same functions with a runtime count.
constexpr int kDhifTaps = 7;

struct FilterGeometry {
  int64_t voxels_per_item;  // N = C * H * W
  int64_t axis_len;         // L: extent of the filtered axis
  int64_t axis_stride;      // element stride of the filtered axis in x
  int axis;                 // 1 bands, 2 rows, 3 columns
  int taps;                 // K (odd)
  Padding padding;
  bool normalize;

  DHIF_HOST_DEVICE int radius() const { return taps / 2; }
};

// Where a voxel lives: its index into x (and grad_y, inv_norm), the index of its tap 0
// (tap i is i * voxels_per_item further) and its position along the filtered axis.
// A neighbour d steps along the axis is at x_index + d * axis_stride, likewise for taps.
struct Voxel {
  int64_t x_index;
  int64_t tap_index;
  int64_t pos;
};

// Locates voxel v (three integer divisions: callers that walk a row step instead).
DHIF_HOST_DEVICE Voxel locate(const FilterGeometry& g, int64_t v) {
  const int64_t item = v / g.voxels_per_item;
  const int64_t q = v - item * g.voxels_per_item;
  return {v, item * g.taps * g.voxels_per_item + q, (q / g.axis_stride) % g.axis_len};
};

// Index in x of the element that tap i of voxel p reads, and whether it counts. The
// position is always clamped into the axis so that the load is in bounds even where zero
// padding drops it: callers load unconditionally and select 0, which keeps the loop
// branch-free (vectorisable) and still lets a NaN or inf tap poison the sum as the
// stack-and-sum reference does (tap * 0 padding).
struct Neighbour {
  int64_t x_index;
  bool valid;
};

DHIF_HOST_DEVICE Neighbour neighbour(const Voxel& p, int tap, int radius, const FilterGeometry& g) {
  const int64_t s = p.pos + tap - radius;
  const int64_t clamped = s < 0 ? 0 : (s >= g.axis_len ? g.axis_len - 1 : s);
  return {p.x_index + (clamped - p.pos) * g.axis_stride, g.padding == Padding::kReplicate || s == clamped};
}

// K as a compile-time constant when kTaps > 0 (unrolled loops), else the runtime value.
template <int kTaps>
DHIF_HOST_DEVICE int tap_count(const FilterGeometry& g) {
  return kTaps > 0 ? kTaps : g.taps;
}

// sqrt in the accumulation type on both sides (the host's ::sqrt would promote float).
template <typename acc_t>
DHIF_HOST_DEVICE acc_t square_root(acc_t value) {
#ifdef __CUDA_ARCH__
  return sqrt(value);
#else
  return std::sqrt(value);
#endif
}

// 1 / max(||v||, eps) from the sum of squares, as F.normalize divides.
template <typename acc_t>
DHIF_HOST_DEVICE acc_t inverse_norm(acc_t sum_of_squares) {
  const acc_t norm = square_root(sum_of_squares);
  const acc_t eps = static_cast<acc_t>(kNormEps);
  return acc_t(1) / (norm > eps ? norm : eps);
}

// Raw filter sum  sum_i v_i * x(s(p, i))  and sum of squares of the taps of voxel p.
template <typename scalar_t, typename acc_t, int kTaps>
DHIF_HOST_DEVICE void raw_filter_sums(const scalar_t* x, const scalar_t* taps, const FilterGeometry& g,
                                      const Voxel& p, acc_t& dot, acc_t& sum_of_squares) {
  const int K = tap_count<kTaps>(g);
  const scalar_t* t = taps + p.tap_index;
  dot = acc_t(0);
  sum_of_squares = acc_t(0);
  for (int i = 0; i < K; ++i) {
    const acc_t ti = static_cast<acc_t>(t[i * g.voxels_per_item]);
    const Neighbour n = neighbour(p, i, K / 2, g);
    const acc_t xn = static_cast<acc_t>(x[n.x_index]);
    const acc_t xi = n.valid ? xn : acc_t(0);
    dot += ti * xi;
    sum_of_squares += ti * ti;
  }
}

// Forward value y(p) = sum_i u_i(p) x(s(p, i)); also returns the inverse norm that the
// input-gradient gather of the backward pass needs for every neighbour.
template <typename scalar_t, typename acc_t, int kTaps>
DHIF_HOST_DEVICE acc_t filter_voxel(const scalar_t* x, const scalar_t* taps, const FilterGeometry& g,
                                    const Voxel& p, acc_t& inv_norm) {
  acc_t dot, sum_of_squares;
  raw_filter_sums<scalar_t, acc_t, kTaps>(x, taps, g, p, dot, sum_of_squares);
  inv_norm = g.normalize ? inverse_norm(sum_of_squares) : acc_t(1);
  return dot * inv_norm;
}

// Gradient of the raw taps of voxel p, written to grad_taps (same layout as taps).
// With u = v / n, y = <u, x_s> and gu_i = g * x_i:
//   n > eps:  dv_i = (gu_i - u_i <u, gu>) / n = g / n * (x_i - u_i * y)
//   n <= eps: dv_i = gu_i / eps  (the clamp is flat in n there)
template <typename scalar_t, typename acc_t, int kTaps>
DHIF_HOST_DEVICE void tap_gradient_voxel(const scalar_t* grad_y, const scalar_t* x, const scalar_t* taps,
                                         const FilterGeometry& g, const Voxel& p, scalar_t* grad_taps) {
  acc_t dot, sum_of_squares;
  raw_filter_sums<scalar_t, acc_t, kTaps>(x, taps, g, p, dot, sum_of_squares);
  const int K = tap_count<kTaps>(g);
  acc_t inv = acc_t(1);
  bool project = false;
  if (g.normalize) {
    inv = inverse_norm(sum_of_squares);
    project = square_root(sum_of_squares) > static_cast<acc_t>(kNormEps);
  }
  const acc_t y = dot * inv;
  const acc_t scale = static_cast<acc_t>(grad_y[p.x_index]) * inv;
  for (int i = 0; i < K; ++i) {
    const Neighbour n = neighbour(p, i, K / 2, g);
    const acc_t xn = static_cast<acc_t>(x[n.x_index]);
    const acc_t xi = n.valid ? xn : acc_t(0);
    const acc_t ui = static_cast<acc_t>(taps[p.tap_index + i * g.voxels_per_item]) * inv;
    grad_taps[p.tap_index + i * g.voxels_per_item] = static_cast<scalar_t>(scale * (project ? xi - ui * y : xi));
  }
}

// Gradient of x at voxel v, as a gather over every (p, i) whose neighbour s(p, i) is v:
// dx(v) = sum u_i(p) g(p). Voxels p lie within `radius` of v along the axis. For an
// interior v exactly one tap of each p reads v (tap i of the voxel r - i steps away);
// near an end, replicate padding makes the first and last positions also collect every
// tap clamped onto them (all of them when L <= radius), and zero padding drops the
// voxels p that fall outside.
template <typename scalar_t, typename acc_t, int kTaps>
DHIF_HOST_DEVICE acc_t input_gradient_voxel(const scalar_t* grad_y, const scalar_t* taps, const acc_t* inv_norm,
                                            const FilterGeometry& g, const Voxel& v) {
  const int K = tap_count<kTaps>(g);
  const int r = K / 2;
  const int64_t m = v.pos;
  acc_t acc = acc_t(0);
  if (m >= r && m < g.axis_len - r) {  // interior: K terms at fixed offsets
    for (int i = 0; i < K; ++i) {
      const int64_t step = (r - i) * g.axis_stride;
      acc += static_cast<acc_t>(taps[v.tap_index + step + i * g.voxels_per_item]) * inv_norm[v.x_index + step] *
             static_cast<acc_t>(grad_y[v.x_index + step]);
    }
    return acc;
  }
  const bool replicate = g.padding == Padding::kReplicate;
  const int64_t first = m - r < 0 ? 0 : m - r;
  const int64_t last = m + r > g.axis_len - 1 ? g.axis_len - 1 : m + r;
  for (int64_t l = first; l <= last; ++l) {
    const int64_t step = (l - m) * g.axis_stride;
    const int exact = static_cast<int>(m - l + r);  // the tap of p that reads v unclamped
    const int lo = (replicate && m == 0) ? 0 : exact;
    const int hi = (replicate && m == g.axis_len - 1) ? K - 1 : exact;
    acc_t tap_sum = acc_t(0);
    for (int i = lo; i <= hi; ++i) {
      tap_sum += static_cast<acc_t>(taps[v.tap_index + step + i * g.voxels_per_item]);
    }
    acc += tap_sum * inv_norm[v.x_index + step] * static_cast<acc_t>(grad_y[v.x_index + step]);
  }
  return acc;
}

}  // namespace dhif
