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

// Unroll the loops over taps (fully when K is a compile-time constant), so that GCC can
// then vectorise the CPU kernels' loops over voxels.
#if defined(__CUDACC__) || defined(__HIPCC__)
#define DHIF_UNROLL _Pragma("unroll")
#define DHIF_NO_UNROLL _Pragma("unroll 1")
#elif defined(__GNUC__)
#define DHIF_UNROLL _Pragma("GCC unroll 16")
#define DHIF_NO_UNROLL
#else
#define DHIF_UNROLL
#define DHIF_NO_UNROLL
#endif

namespace dhif {

enum class Padding : int { kReplicate = 0, kZeros = 1 };

// F.normalize's eps: taps whose L2 norm is below it are divided by eps instead.
constexpr double kNormEps = 1e-12;

// The DHIF-Net tap count, compiled as a constant so that its loops unroll; other K run
// the same functions with a runtime count.
constexpr int kDhifTaps = 7;

// index_t is int64_t on the host; the CUDA kernels take int32_t whenever every index of
// the launch fits, which halves their integer arithmetic.
template <typename index_t>
struct FilterGeometry {
  index_t voxels_per_item;  // N = C * H * W
  index_t axis_len;         // L: extent of the filtered axis
  index_t axis_stride;      // element stride of the filtered axis in x
  int axis;                 // 1 bands, 2 rows, 3 columns
  int taps;                 // K (odd)
  Padding padding;
  bool normalize;

  template <typename other_t>
  FilterGeometry<other_t> with_index_type() const {
    return {static_cast<other_t>(voxels_per_item), static_cast<other_t>(axis_len), static_cast<other_t>(axis_stride),
            axis, taps, padding, normalize};
  }
};

// Where a voxel lives: its index into x (and grad_y, inv_norm), the index of its tap 0
// (tap i is i * voxels_per_item further) and its position along the filtered axis.
// A neighbour d steps along the axis is at x_index + d * axis_stride, likewise for taps.
template <typename index_t>
struct Voxel {
  index_t x_index;
  index_t tap_index;
  index_t pos;
};

// Locates voxel v (three integer divisions: callers that walk a row step instead).
template <typename index_t>
DHIF_HOST_DEVICE Voxel<index_t> locate(const FilterGeometry<index_t>& g, index_t v) {
  const index_t item = v / g.voxels_per_item;
  const index_t q = v - item * g.voxels_per_item;
  return {v, item * g.taps * g.voxels_per_item + q, (q / g.axis_stride) % g.axis_len};
}

// Index in x of the element that tap i of voxel p reads, and whether it counts. The
// position is always clamped into the axis so that the load is in bounds even where zero
// padding drops it: callers load unconditionally and select 0, which keeps the loop
// branch-free (vectorisable) and still lets a NaN or inf tap poison the sum as the
// stack-and-sum reference does (tap * 0 padding).
template <typename index_t>
struct Neighbour {
  index_t x_index;
  bool valid;
};

// min/max and a non-short-circuit `|` rather than branches: GCC vectorises the CPU
// loops over a row only when the body has no control flow.
template <typename index_t>
DHIF_HOST_DEVICE index_t clamp_position(index_t s, index_t len) {
  const index_t low = s > 0 ? s : 0;
  return low < len - 1 ? low : len - 1;
}

template <typename index_t>
DHIF_HOST_DEVICE Neighbour<index_t> neighbour(const Voxel<index_t>& p, int tap, int radius,
                                              const FilterGeometry<index_t>& g) {
  const index_t s = p.pos + tap - radius;
  const index_t clamped = clamp_position(s, g.axis_len);
  return {p.x_index + (clamped - p.pos) * g.axis_stride, static_cast<bool>((g.padding == Padding::kReplicate) | (s == clamped))};
}

// K as a compile-time constant when kTaps > 0 (unrolled loops), else the runtime value.
template <int kTaps, typename index_t>
DHIF_HOST_DEVICE int tap_count(const FilterGeometry<index_t>& g) {
  return kTaps > 0 ? kTaps : g.taps;
}

// Whether a tap vector's norm exceeds eps, from its sum of squares (no sqrt needed).
template <typename acc_t>
DHIF_HOST_DEVICE bool norm_exceeds_eps(acc_t sum_of_squares) {
  return sum_of_squares > static_cast<acc_t>(kNormEps * kNormEps);
}

// 1 / max(||v||, eps) from the sum of squares, as F.normalize divides. On the device a
// float accumulator takes the hardware rsqrt (within 2 ulp; the IEEE sqrt and division
// cost about 40 instructions per voxel, a quarter of the half-precision forward). Its
// operand exceeds eps^2 = 1e-24, far above the denormals, so flushing them changes nothing
// and spares rsqrtf's denormal scaling. A NaN sum gives 1 / eps on both sides; the NaN
// still reaches the output through the dot.
template <typename acc_t>
DHIF_HOST_DEVICE acc_t inverse_norm(acc_t sum_of_squares) {
  const acc_t inv_eps = acc_t(1) / static_cast<acc_t>(kNormEps);
#ifdef __CUDA_ARCH__
  if constexpr (sizeof(acc_t) == sizeof(float)) {
    float root;
    asm("rsqrt.approx.ftz.f32 %0, %1;" : "=f"(root) : "f"(sum_of_squares));
    return norm_exceeds_eps(sum_of_squares) ? root : inv_eps;
  } else {
    return norm_exceeds_eps(sum_of_squares) ? acc_t(1) / sqrt(sum_of_squares) : inv_eps;
  }
#else
  return norm_exceeds_eps(sum_of_squares) ? acc_t(1) / std::sqrt(sum_of_squares) : inv_eps;
#endif
}

// Raw filter sum  sum_i v_i * x(s(p, i))  and sum of squares of the taps of voxel p;
// keep(i, v_i, x_i) sees the operands of each term.
template <typename scalar_t, typename acc_t, int kTaps, typename index_t, typename Keep>
DHIF_HOST_DEVICE void raw_filter_sums(const scalar_t* x, const scalar_t* taps, const FilterGeometry<index_t>& g,
                                      const Voxel<index_t>& p, acc_t& dot, acc_t& sum_of_squares, const Keep& keep) {
  const int K = tap_count<kTaps>(g);
  const scalar_t* t = taps + p.tap_index;
  dot = acc_t(0);
  sum_of_squares = acc_t(0);
  DHIF_UNROLL
  for (int i = 0; i < K; ++i) {
    const acc_t ti = static_cast<acc_t>(t[i * g.voxels_per_item]);
    const Neighbour<index_t> n = neighbour(p, i, K / 2, g);
    const acc_t xn = static_cast<acc_t>(x[n.x_index]);
    const acc_t xi = n.valid ? xn : acc_t(0);
    dot += ti * xi;
    sum_of_squares += ti * ti;
    keep(i, ti, xi);
  }
}

template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
DHIF_HOST_DEVICE void raw_filter_sums(const scalar_t* x, const scalar_t* taps, const FilterGeometry<index_t>& g,
                                      const Voxel<index_t>& p, acc_t& dot, acc_t& sum_of_squares) {
  raw_filter_sums<scalar_t, acc_t, kTaps>(x, taps, g, p, dot, sum_of_squares, [](int, acc_t, acc_t) {});
}

// Forward value y(p) = sum_i u_i(p) x(s(p, i)); also returns the inverse norm that the
// input-gradient gather of the backward pass needs for every neighbour.
template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
DHIF_HOST_DEVICE acc_t filter_voxel(const scalar_t* x, const scalar_t* taps, const FilterGeometry<index_t>& g,
                                    const Voxel<index_t>& p, acc_t& inv_norm) {
  acc_t dot, sum_of_squares;
  raw_filter_sums<scalar_t, acc_t, kTaps>(x, taps, g, p, dot, sum_of_squares);
  inv_norm = g.normalize ? inverse_norm(sum_of_squares) : acc_t(1);
  return dot * inv_norm;
}

// Gradient of the raw taps of voxel p. With u = v / n, y = <u, x_s> and gu_i = g * x_i:
//   n > eps:  dv_i = (gu_i - u_i <u, gu>) / n = g / n * (x_i - u_i * y)
//   n <= eps: dv_i = gu_i / eps  (the clamp is flat in n there)
// Both are dv_i = a * x_i - b * v_i with per-voxel coefficients a = g / max(n, eps) and
// b = a * y / n (0 when n <= eps or without normalisation), computed once per voxel.
template <typename acc_t>
struct TapGradientCoefficients {
  acc_t a;
  acc_t b;
};

template <typename acc_t>
DHIF_HOST_DEVICE TapGradientCoefficients<acc_t> coefficients_from_sums(acc_t grad_y, acc_t dot, acc_t sum_of_squares,
                                                                       bool normalize) {
  const acc_t inv = normalize ? inverse_norm(sum_of_squares) : acc_t(1);
  const bool project = normalize & norm_exceeds_eps(sum_of_squares);
  const acc_t a = grad_y * inv;
  return {a, project ? a * dot * inv * inv : acc_t(0)};
}

template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
DHIF_HOST_DEVICE TapGradientCoefficients<acc_t> tap_gradient_coefficients(const scalar_t* grad_y, const scalar_t* x,
                                                                          const scalar_t* taps,
                                                                          const FilterGeometry<index_t>& g,
                                                                          const Voxel<index_t>& p) {
  acc_t dot, sum_of_squares;
  raw_filter_sums<scalar_t, acc_t, kTaps>(x, taps, g, p, dot, sum_of_squares);
  return coefficients_from_sums(static_cast<acc_t>(grad_y[p.x_index]), dot, sum_of_squares, g.normalize);
}

// dv_i of voxel p from its coefficients.
template <typename scalar_t, typename acc_t, typename index_t>
DHIF_HOST_DEVICE acc_t tap_gradient_value(const TapGradientCoefficients<acc_t>& c, const scalar_t* x,
                                          const scalar_t* taps, const FilterGeometry<index_t>& g,
                                          const Voxel<index_t>& p, int tap, int radius) {
  const Neighbour<index_t> n = neighbour(p, tap, radius, g);
  const acc_t xn = static_cast<acc_t>(x[n.x_index]);
  const acc_t xi = n.valid ? xn : acc_t(0);
  return c.a * xi - c.b * static_cast<acc_t>(taps[p.tap_index + tap * g.voxels_per_item]);
}

// All K tap gradients of voxel p, written to grad_taps (same layout as taps). With K known
// at compile time the taps and inputs stay in registers between the sums and the
// gradients; otherwise they are loaded again.
template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
DHIF_HOST_DEVICE void tap_gradient_voxel(const scalar_t* grad_y, const scalar_t* x, const scalar_t* taps,
                                         const FilterGeometry<index_t>& g, const Voxel<index_t>& p,
                                         scalar_t* grad_taps) {
  const int K = tap_count<kTaps>(g);
  if constexpr (kTaps > 0) {
    acc_t kept_taps[kTaps], kept_inputs[kTaps];
    acc_t dot, sum_of_squares;
    raw_filter_sums<scalar_t, acc_t, kTaps>(x, taps, g, p, dot, sum_of_squares, [&](int i, acc_t tap, acc_t input) {
      kept_taps[i] = tap;
      kept_inputs[i] = input;
    });
    const TapGradientCoefficients<acc_t> c =
        coefficients_from_sums(static_cast<acc_t>(grad_y[p.x_index]), dot, sum_of_squares, g.normalize);
    DHIF_UNROLL
    for (int i = 0; i < K; ++i) {
      grad_taps[p.tap_index + i * g.voxels_per_item] = static_cast<scalar_t>(c.a * kept_inputs[i] - c.b * kept_taps[i]);
    }
  } else {
    const TapGradientCoefficients<acc_t> c = tap_gradient_coefficients<scalar_t, acc_t, kTaps>(grad_y, x, taps, g, p);
    for (int i = 0; i < K; ++i) {
      grad_taps[p.tap_index + i * g.voxels_per_item] =
          static_cast<scalar_t>(tap_gradient_value<scalar_t, acc_t, index_t>(c, x, taps, g, p, i, K / 2));
    }
  }
}

// Gradient of x at voxel v, as a gather over every (p, i) whose neighbour s(p, i) is v:
// dx(v) = sum u_i(p) g(p). Voxels p lie within r = K / 2 of v along the axis. For an
// interior v (r <= pos < L - r) exactly one tap of each p reads v: tap i of the voxel
// r - i steps away. Near an end, replicate padding makes the first and last positions also
// collect every tap clamped onto them (all of them when L <= r), and zero padding drops
// the voxels p that fall outside.
template <int kTaps, typename index_t>
DHIF_HOST_DEVICE bool is_interior(const FilterGeometry<index_t>& g, index_t pos) {
  const int r = tap_count<kTaps>(g) / 2;
  return pos >= r && pos < g.axis_len - r;
}

// The interior case: K terms at fixed offsets, no branches (the CPU vectorises it).
template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
DHIF_HOST_DEVICE acc_t input_gradient_interior(const scalar_t* grad_y, const scalar_t* taps, const acc_t* inv_norm,
                                               const FilterGeometry<index_t>& g, const Voxel<index_t>& v) {
  const int K = tap_count<kTaps>(g);
  const int r = K / 2;
  acc_t acc = acc_t(0);
  DHIF_UNROLL
  for (int i = 0; i < K; ++i) {
    const index_t step = (r - i) * g.axis_stride;
    acc += static_cast<acc_t>(taps[v.tap_index + step + i * g.voxels_per_item]) * inv_norm[v.x_index + step] *
           static_cast<acc_t>(grad_y[v.x_index + step]);
  }
  return acc;
}

// The terms of the gather at position m of an axis of `length` (any position, the ends
// included): visit(l, lo, hi) for each position l within r of m, whose taps lo..hi read m:
// the exact tap m - l + r, and with replicate padding at the end positions also every tap
// clamped onto them. The CPU kernels gather whole rows with the same terms.
template <typename index_t, typename Visit>
DHIF_HOST_DEVICE void for_each_border_term(index_t m, index_t length, int K, bool replicate, const Visit& visit) {
  const int r = K / 2;
  const index_t first = m - r < 0 ? 0 : m - r;
  const index_t last = m + r > length - 1 ? length - 1 : m + r;
  for (index_t l = first; l <= last; ++l) {
    const int exact = static_cast<int>(m - l + r);
    visit(l, (replicate && m == 0) ? 0 : exact, (replicate && m == length - 1) ? K - 1 : exact);
  }
}

template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
DHIF_HOST_DEVICE acc_t input_gradient_border(const scalar_t* grad_y, const scalar_t* taps, const acc_t* inv_norm,
                                             const FilterGeometry<index_t>& g, const Voxel<index_t>& v) {
  acc_t acc = acc_t(0);
  for_each_border_term(v.pos, g.axis_len, tap_count<kTaps>(g), g.padding == Padding::kReplicate,
                       [&](index_t l, int lo, int hi) {
                         const index_t step = (l - v.pos) * g.axis_stride;
                         acc_t tap_sum = acc_t(0);
                         for (int i = lo; i <= hi; ++i) {
                           tap_sum += static_cast<acc_t>(taps[v.tap_index + step + i * g.voxels_per_item]);
                         }
                         acc += tap_sum * inv_norm[v.x_index + step] * static_cast<acc_t>(grad_y[v.x_index + step]);
                       });
  return acc;
}

template <typename scalar_t, typename acc_t, int kTaps, typename index_t>
DHIF_HOST_DEVICE acc_t input_gradient_voxel(const scalar_t* grad_y, const scalar_t* taps, const acc_t* inv_norm,
                                            const FilterGeometry<index_t>& g, const Voxel<index_t>& v) {
  return is_interior<kTaps>(g, v.pos) ? input_gradient_interior<scalar_t, acc_t, kTaps>(grad_y, taps, inv_norm, g, v)
                                      : input_gradient_border<scalar_t, acc_t, kTaps>(grad_y, taps, inv_norm, g, v);
}

}  // namespace dhif
