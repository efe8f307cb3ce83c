// CPU kernels of the adaptive filter, compiled once per instruction set (see
// adaptive_filter_cpu_kernel.h). Voxels are processed a vector of lanes at a time along
// rows of contiguous voxels. Every operand of a row is itself a contiguous row: the K
// neighbour rows of x (whole rows for the bands and rows passes, the row itself shifted
// for the columns pass, read from a padded copy), the K tap rows and the gradient rows,
// so that each load is a plain vector load and the loops have no per-voxel branches.
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/vec/functional.h>
#include <ATen/cpu/vec/vec.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "adaptive_filter_cpu_kernel.h"

#ifndef CPU_CAPABILITY
#error "adaptive_filter_cpu_kernel.cpp is compiled with -DCPU_CAPABILITY=<DEFAULT|AVX2|AVX512> (see setup.py)"
#endif

namespace dhif::cpu::CPU_CAPABILITY {
// Everything but the two entry points has internal linkage, so that no inline function
// compiled for AVX-512 can stand in for the baseline copy at link time.
namespace {

using at::vec::Vectorized;

// Loads and stores of n <= size() elements of scalar_t as lanes of its accumulation type;
// the half types convert to float on load and back on store.
template <typename scalar_t>
struct Lanes {
  using acc_t = at::opmath_type<scalar_t>;
  using Vec = Vectorized<acc_t>;
  static constexpr int64_t size() { return Vec::size(); }

  static Vec load(const scalar_t* p, int64_t n) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      return n == size() ? Vec::loadu(p) : Vec::loadu(p, n);
    } else {
      if (n == size()) {
        Vec out;
        at::vec::load_to_float(p, out);
        return out;
      }
      return std::get<0>(at::vec::convert_to_float<scalar_t>(Vectorized<scalar_t>::loadu(p, n)));
    }
  }

  static void store(scalar_t* p, const Vec& v, int64_t n) {
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      v.store(p, n);
    } else {
#if defined(CPU_CAPABILITY_AVX512)
      // One vector of 16 floats to 16 halves (convert_from_float converts two).
      const __m256i halves = std::is_same_v<scalar_t, at::BFloat16> ? at::vec::cvtfp32_bf16(v) : at::vec::cvtfp32_fp16(v);
      _mm256_mask_storeu_epi16(p, static_cast<__mmask16>((uint32_t(1) << n) - 1), halves);
#else
      at::vec::convert_from_float<scalar_t>(v, v).store(p, n);
#endif
    }
  }
};

// Stores of outputs that this pass never reads again (the tap gradients, the inverse norm
// kept for the backward): a streaming store writes the cache line without first reading
// it, which an ordinary store to fresh memory does, a third more traffic for the tap
// gradients. at::vec has no such store, hence the intrinsics, for whole aligned vectors
// of float or double; everything else takes the ordinary store.
template <typename scalar_t>
void store_streaming(scalar_t* p, const Vectorized<at::opmath_type<scalar_t>>& v, int64_t n) {
  [[maybe_unused]] const bool whole = n == Vectorized<at::opmath_type<scalar_t>>::size() &&
                                      reinterpret_cast<uintptr_t>(p) % sizeof(v) == 0;
#if defined(CPU_CAPABILITY_AVX512)
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (whole) return _mm512_stream_ps(p, v);
  } else if constexpr (std::is_same_v<scalar_t, double>) {
    if (whole) return _mm512_stream_pd(p, v);
  } else {
    if (n == 16 && reinterpret_cast<uintptr_t>(p) % 32 == 0) {
      const __m256i halves = std::is_same_v<scalar_t, at::BFloat16> ? at::vec::cvtfp32_bf16(v) : at::vec::cvtfp32_fp16(v);
      return _mm256_stream_si256(reinterpret_cast<__m256i*>(p), halves);
    }
  }
#elif defined(CPU_CAPABILITY_AVX2)
  if constexpr (std::is_same_v<scalar_t, float>) {
    if (whole) return _mm256_stream_ps(p, v);
  } else if constexpr (std::is_same_v<scalar_t, double>) {
    if (whole) return _mm256_stream_pd(p, v);
  }
#endif
  Lanes<scalar_t>::store(p, v, n);
}

// Streaming stores are weakly ordered: each task fences its own before the join.
void finish_streaming_stores() {
#if defined(CPU_CAPABILITY_AVX512) || defined(CPU_CAPABILITY_AVX2)
  _mm_sfence();
#endif
}

// 1 / max(||v||, eps) from the sum of squares, lane by lane, exactly as the scalar
// inverse_norm of adaptive_filter.h computes it (a NaN sum takes 1 / eps there too).
template <typename acc_t>
Vectorized<acc_t> inverse_norm_lanes(const Vectorized<acc_t>& sum_of_squares, bool normalize) {
  using Vec = Vectorized<acc_t>;
  if (!normalize) return Vec(acc_t(1));
  const Vec inv_eps(acc_t(1) / static_cast<acc_t>(kNormEps));
  const Vec above = sum_of_squares > Vec(static_cast<acc_t>(kNormEps * kNormEps));
  return Vec::blendv(inv_eps, Vec(acc_t(1)) / sum_of_squares.sqrt(), above);
}

// Voxels per parallel task: large enough to amortise scheduling, small enough to balance.
constexpr int64_t kGrainVoxels = 1 << 14;

// Rows along the bands axis are cut into chunks of at most this many voxels: the window of
// K chunks of K tap rows that the backward keeps in cache stays within L2.
constexpr int64_t kLineChunk = 512;

// Where one row of voxels reads its operands: x_rows[i][w] is the input that tap i of
// voxel w multiplies, tap_rows[i][w] that tap. Sized once per parallel task.
template <typename scalar_t>
struct RowOperands {
  std::vector<const scalar_t*> x_rows, tap_rows;
  std::vector<scalar_t> padded;  // the columns pass: the row with K / 2 padding each side
  std::vector<scalar_t> zeros;   // the zero-padded rows beyond the ends of the axis

  RowOperands(int K, int64_t width) : x_rows(K), tap_rows(K), padded(width + K - 1), zeros(width, scalar_t(0)) {}
};

// Points `ops` at the operands of the row of `width` voxels starting at voxel `first`.
template <typename scalar_t>
void locate_row(const FilterGeometry<int64_t>& g, const scalar_t* x, const scalar_t* taps, const Voxel<int64_t>& first,
                int64_t width, RowOperands<scalar_t>& ops) {
  const int K = g.taps, r = K / 2;
  for (int i = 0; i < K; ++i) ops.tap_rows[i] = taps + first.tap_index + i * g.voxels_per_item;
  if (g.axis == 3) {  // one row holds the whole axis: padded[w + i] is tap i's input for voxel w
    const scalar_t* row = x + first.x_index;
    std::copy(row, row + width, ops.padded.begin() + r);
    const bool replicate = g.padding == Padding::kReplicate;
    for (int j = 0; j < r; ++j) {  // the r positions beyond each end
      ops.padded[j] = replicate ? row[0] : scalar_t(0);
      ops.padded[r + width + j] = replicate ? row[width - 1] : scalar_t(0);
    }
    for (int i = 0; i < K; ++i) ops.x_rows[i] = ops.padded.data() + i;
    return;
  }
  for (int i = 0; i < K; ++i) {
    const Neighbour<int64_t> n = neighbour(first, i, r, g);
    ops.x_rows[i] = n.valid ? x + n.x_index : ops.zeros.data();
  }
}

// For voxels [w, w + n) of a row: the raw filter sum and the taps' sum of squares;
// keep(i, tap, input) sees the operands of each term (as raw_filter_sums in adaptive_filter.h).
template <typename scalar_t, int kTaps, typename Keep>
void row_sums(const RowOperands<scalar_t>& ops, int K, int64_t w, int64_t n, typename Lanes<scalar_t>::Vec& dot,
              typename Lanes<scalar_t>::Vec& sum_of_squares, const Keep& keep) {
  using L = Lanes<scalar_t>;
  using Vec = typename L::Vec;
  Vec d(0), s(0);
  const int count = kTaps > 0 ? kTaps : K;
  for (int i = 0; i < count; ++i) {
    const Vec t = L::load(ops.tap_rows[i] + w, n), x = L::load(ops.x_rows[i] + w, n);
    d = at::vec::fmadd(t, x, d);
    s = at::vec::fmadd(t, t, s);
    keep(i, t, x);
  }
  dot = d;
  sum_of_squares = s;
}

template <typename scalar_t, int kTaps>
void row_sums(const RowOperands<scalar_t>& ops, int K, int64_t w, int64_t n, typename Lanes<scalar_t>::Vec& dot,
              typename Lanes<scalar_t>::Vec& sum_of_squares) {
  using Vec = typename Lanes<scalar_t>::Vec;
  row_sums<scalar_t, kTaps>(ops, K, w, n, dot, sum_of_squares, [](int, const Vec&, const Vec&) {});
}

// The tap-gradient coefficients of a vector of voxels, lane by lane as coefficients_from_sums
// in adaptive_filter.h: a = g / max(||v||, eps) and b = a y / ||v|| (0 below eps or without
// normalisation), so that dv_i = a x_i - b v_i.
template <typename acc_t>
struct CoefficientLanes {
  Vectorized<acc_t> a, b;
};

template <typename acc_t>
CoefficientLanes<acc_t> coefficient_lanes(const Vectorized<acc_t>& grad_y, const Vectorized<acc_t>& dot,
                                          const Vectorized<acc_t>& sum_of_squares, bool normalize) {
  using Vec = Vectorized<acc_t>;
  const Vec inv = inverse_norm_lanes(sum_of_squares, normalize);
  const Vec a = grad_y * inv;
  if (!normalize) return {a, Vec(acc_t(0))};
  return {a, a * dot * inv * inv & (sum_of_squares > Vec(static_cast<acc_t>(kNormEps * kNormEps)))};
}

// y and the inverse norm of one row.
template <typename scalar_t, int kTaps>
void filter_row(const RowOperands<scalar_t>& ops, const FilterGeometry<int64_t>& g, int64_t width, scalar_t* y,
                at::opmath_type<scalar_t>* inv_norm) {
  using L = Lanes<scalar_t>;
  for (int64_t w = 0; w < width; w += L::size()) {
    const int64_t n = std::min<int64_t>(L::size(), width - w);
    typename L::Vec dot, sum_of_squares;
    row_sums<scalar_t, kTaps>(ops, g.taps, w, n, dot, sum_of_squares);
    const auto inv = inverse_norm_lanes(sum_of_squares, g.normalize);
    L::store(y + w, dot * inv, n);
    store_streaming(inv_norm + w, inv, n);
  }
}

// The backward of one row, first half: a = g / max(||v||, eps) per voxel into `a`
// (u_i * g = v_i * a is what the input-gradient gather sums) and, when asked, the tap
// gradients dv_i = a x_i - b v_i with b = a y / ||v|| (see coefficients_from_sums). With a
// runtime K the coefficients of the whole row come first (into `b`) and the K gradient
// rows are then written one at a time.
template <typename scalar_t, int kTaps>
void tap_gradient_row(const RowOperands<scalar_t>& ops, const FilterGeometry<int64_t>& g, int64_t width,
                      const scalar_t* grad_y, at::opmath_type<scalar_t>* a, at::opmath_type<scalar_t>* b,
                      scalar_t* grad_taps, bool need_grad_taps) {
  using L = Lanes<scalar_t>;
  using Vec = typename L::Vec;
  const int K = tap_count<kTaps>(g);
  if constexpr (kTaps > 0) {
    // K known: the taps and inputs stay in registers from the sums to the gradients, and the
    // K gradient rows go out together as streaming stores, which take no cache sets.
    for (int64_t w = 0; w < width; w += L::size()) {
      const int64_t n = std::min<int64_t>(L::size(), width - w);
      Vec t[kTaps], x[kTaps], dot, sum_of_squares;
      row_sums<scalar_t, kTaps>(ops, K, w, n, dot, sum_of_squares, [&](int i, const Vec& tap, const Vec& input) {
        t[i] = tap;
        x[i] = input;
      });
      const auto c = coefficient_lanes(L::load(grad_y + w, n), dot, sum_of_squares, g.normalize);
      c.a.store(a + w, n);
      if (!need_grad_taps) continue;
      for (int i = 0; i < kTaps; ++i) {
        store_streaming(grad_taps + (ops.tap_rows[i] - ops.tap_rows[0]) + w, c.a * x[i] - c.b * t[i], n);
      }
    }
    return;
  }
  for (int64_t w = 0; w < width; w += L::size()) {
    const int64_t n = std::min<int64_t>(L::size(), width - w);
    Vec dot, sum_of_squares;
    row_sums<scalar_t, kTaps>(ops, K, w, n, dot, sum_of_squares);
    const auto c = coefficient_lanes(L::load(grad_y + w, n), dot, sum_of_squares, g.normalize);
    c.a.store(a + w, n);
    if (need_grad_taps) c.b.store(b + w, n);
  }
  if (!need_grad_taps) return;
  for (int i = 0; i < K; ++i) {
    scalar_t* out = grad_taps + (ops.tap_rows[i] - ops.tap_rows[0]);
    for (int64_t w = 0; w < width; w += L::size()) {
      const int64_t n = std::min<int64_t>(L::size(), width - w);
      const Vec value = Vec::loadu(a + w, n) * L::load(ops.x_rows[i] + w, n) -
                        Vec::loadu(b + w, n) * L::load(ops.tap_rows[i] + w, n);
      store_streaming(out + w, value, n);
    }
  }
}

template <typename scalar_t, int kTaps>
void forward(const ForwardBuffers& buffers) {
  using acc_t = at::opmath_type<scalar_t>;
  const FilterGeometry<int64_t>& g = buffers.geometry;
  const scalar_t* x = buffers.x.const_data_ptr<scalar_t>();
  const scalar_t* taps = buffers.taps.const_data_ptr<scalar_t>();
  scalar_t* y = buffers.y.mutable_data_ptr<scalar_t>();
  acc_t* inv_norm = buffers.inv_norm.mutable_data_ptr<acc_t>();
  const int64_t width = buffers.x.size(3), rows = buffers.x.numel() / width;
  // Each row of W voxels (b, c, h) is independent.
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrainVoxels / width), [&](int64_t begin, int64_t end) {
    RowOperands<scalar_t> ops(g.taps, width);
    for (int64_t row = begin; row < end; ++row) {
      const Voxel<int64_t> first = locate(g, row * width);
      locate_row(g, x, taps, first, width, ops);
      filter_row<scalar_t, kTaps>(ops, g, width, y + first.x_index, inv_norm + first.x_index);
    }
    finish_streaming_stores();
  });
}

// The backward's operands (an unwanted gradient is null) and the filter's shape.
template <typename scalar_t, int kTaps>
struct BackwardPass {
  const scalar_t *grad_y, *x, *taps;
  scalar_t *grad_x, *grad_taps;
  const FilterGeometry<int64_t>& g;
  int K, r;
  bool replicate;

  BackwardPass(const BackwardBuffers& b, bool need_grad_x, bool need_grad_taps)
      : grad_y(b.grad_y.const_data_ptr<scalar_t>()),
        x(b.x.const_data_ptr<scalar_t>()),
        taps(b.taps.const_data_ptr<scalar_t>()),
        grad_x(need_grad_x ? b.grad_x.mutable_data_ptr<scalar_t>() : nullptr),
        grad_taps(need_grad_taps ? b.grad_taps.mutable_data_ptr<scalar_t>() : nullptr),
        g(b.geometry),
        K(tap_count<kTaps>(b.geometry)),
        r(K / 2),
        replicate(b.geometry.padding == Padding::kReplicate) {}
};

// The columns pass: each row (b, c, h) holds its whole axis. Its coefficients a are
// computed for the row, then the input gradient of interior voxel w is the gather
// sum_i v_i(w + r - i) a(w + r - i) from the tap rows just read (still in L1); the r
// voxels at each end gather their terms one by one.
template <typename scalar_t, int kTaps>
void backward_columns(const BackwardBuffers& buffers, bool need_grad_x, bool need_grad_taps) {
  using L = Lanes<scalar_t>;
  using Vec = typename L::Vec;
  using acc_t = typename L::acc_t;
  const BackwardPass<scalar_t, kTaps> io(buffers, need_grad_x, need_grad_taps);
  const FilterGeometry<int64_t>& g = io.g;
  const int K = io.K, r = io.r;
  const int64_t width = buffers.x.size(3), rows = buffers.x.numel() / width;
  const int64_t lo = std::min<int64_t>(r, width), hi = std::max<int64_t>(lo, width - r);
  at::parallel_for(0, rows, std::max<int64_t>(1, kGrainVoxels / width), [&](int64_t begin, int64_t end) {
    RowOperands<scalar_t> ops(K, width);
    std::vector<acc_t> a(width), b(width);
    for (int64_t row = begin; row < end; ++row) {
      const Voxel<int64_t> first = locate(g, row * width);
      locate_row(g, io.x, io.taps, first, width, ops);
      tap_gradient_row<scalar_t, kTaps>(ops, g, width, io.grad_y + first.x_index, a.data(), b.data(),
                                        need_grad_taps ? io.grad_taps + first.tap_index : nullptr, need_grad_taps);
      if (!need_grad_x) continue;
      scalar_t* out = io.grad_x + first.x_index;
      for (int64_t w = lo; w < hi; w += L::size()) {
        const int64_t n = std::min<int64_t>(L::size(), hi - w);
        Vec acc(0);
        for (int i = 0; i < K; ++i) {
          const int64_t p = w + r - i;
          acc = at::vec::fmadd(L::load(ops.tap_rows[i] + p, n), Vec::loadu(a.data() + p, n), acc);
        }
        L::store(out + w, acc, n);
      }
      const auto border = [&](int64_t j) {
        acc_t acc(0);
        for_each_border_term<int64_t>(j, width, K, io.replicate, [&](int64_t p, int lo_tap, int hi_tap) {
          acc_t tap_sum(0);
          for (int i = lo_tap; i <= hi_tap; ++i) tap_sum += static_cast<acc_t>(ops.tap_rows[i][p]);
          acc += tap_sum * a[p];
        });
        out[j] = static_cast<scalar_t>(acc);
      };
      for (int64_t w = 0; w < lo; ++w) border(w);
      for (int64_t w = hi; w < width; ++w) border(w);
    }
    finish_streaming_stores();
  });
}

// The rows and bands passes: the axis runs across rows, so each task walks its rows along
// the axis in order (a "column" of L rows of one chunk) and keeps the coefficients a of
// the last K rows in a ring. Row j's input gradient, sum over the rows p within r of j
// of (the taps of p that land on j) * a(p), is gathered as soon as row j + r is done:
// every tap row is read from memory once, by the tap gradients, and again from cache.
template <typename scalar_t, int kTaps>
void backward_lines(const BackwardBuffers& buffers, bool need_grad_x, bool need_grad_taps) {
  using L = Lanes<scalar_t>;
  using Vec = typename L::Vec;
  using acc_t = typename L::acc_t;
  const BackwardPass<scalar_t, kTaps> io(buffers, need_grad_x, need_grad_taps);
  const FilterGeometry<int64_t>& g = io.g;
  const int K = io.K, r = io.r;
  const int64_t length = g.axis_len, stride = g.axis_stride;
  const int64_t blocks = buffers.x.numel() / (length * stride);  // (b) for bands, (b, c) for rows
  const int64_t chunk = std::min(stride, kLineChunk), chunks = (stride + chunk - 1) / chunk;
  const int64_t grain = std::max<int64_t>(1, kGrainVoxels / (chunk * length));
  at::parallel_for(0, blocks * chunks, grain, [&](int64_t begin, int64_t end) {
    RowOperands<scalar_t> ops(K, chunk);
    std::vector<acc_t> ring(K * chunk), b(chunk);
    std::vector<const scalar_t*> tap_rows(static_cast<size_t>(K) * K);  // tap i of row p: [(p % K) * K + i]
    std::vector<const scalar_t*> term_taps(K);
    std::vector<const acc_t*> term_coefficients(K);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t offset = (task % chunks) * chunk, width = std::min(chunk, stride - offset);
      const int64_t origin = (task / chunks) * length * stride + offset;
      for (int64_t m = 0; m < length + r; ++m) {
        if (m < length) {
          const Voxel<int64_t> first = locate(g, origin + m * stride);
          locate_row(g, io.x, io.taps, first, width, ops);
          std::copy(ops.tap_rows.begin(), ops.tap_rows.end(), tap_rows.begin() + (m % K) * K);
          tap_gradient_row<scalar_t, kTaps>(ops, g, width, io.grad_y + first.x_index, ring.data() + (m % K) * chunk,
                                            b.data(), need_grad_taps ? io.grad_taps + first.tap_index : nullptr,
                                            need_grad_taps);
        }
        const int64_t j = m - r;
        if (!need_grad_x || j < 0) continue;
        scalar_t* out = io.grad_x + origin + j * stride;
        if (j >= r && j < length - r) {  // interior: row j - r + i sends its tap K - 1 - i, K terms
          for (int i = 0; i < K; ++i) {
            const int64_t p = j - r + i;
            term_taps[i] = tap_rows[(p % K) * K + (K - 1 - i)];
            term_coefficients[i] = ring.data() + (p % K) * chunk;
          }
          for (int64_t w = 0; w < width; w += L::size()) {
            const int64_t n = std::min<int64_t>(L::size(), width - w);
            Vec acc(0);
            for (int i = 0; i < (kTaps > 0 ? kTaps : K); ++i) {
              acc = at::vec::fmadd(L::load(term_taps[i] + w, n), Vec::loadu(term_coefficients[i] + w, n), acc);
            }
            L::store(out + w, acc, n);
          }
          continue;
        }
        for (int64_t w = 0; w < width; w += L::size()) {  // near the ends
          const int64_t n = std::min<int64_t>(L::size(), width - w);
          Vec acc(0);
          for_each_border_term<int64_t>(j, length, K, io.replicate, [&](int64_t p, int lo_tap, int hi_tap) {
            const scalar_t* const* rows_of_p = tap_rows.data() + (p % K) * K;
            Vec tap_sum = L::load(rows_of_p[lo_tap] + w, n);
            for (int i = lo_tap + 1; i <= hi_tap; ++i) tap_sum = tap_sum + L::load(rows_of_p[i] + w, n);
            acc = at::vec::fmadd(tap_sum, Vec::loadu(ring.data() + (p % K) * chunk + w, n), acc);
          });
          L::store(out + w, acc, n);
        }
      }
    }
    finish_streaming_stores();
  });
}

}  // namespace

void adaptive_filter_forward_kernel(const ForwardBuffers& buffers) {
  dispatch_dtype_and_taps(buffers.x.scalar_type(), buffers.geometry.taps,
                          [&](auto scalar, auto taps_constant) {
                            forward<decltype(scalar), decltype(taps_constant)::value>(buffers);
                          });
}

void adaptive_filter_backward_kernel(const BackwardBuffers& buffers, bool need_grad_x, bool need_grad_taps) {
  dispatch_dtype_and_taps(buffers.x.scalar_type(), buffers.geometry.taps,
                          [&](auto scalar, auto taps_constant) {
                            using scalar_t = decltype(scalar);
                            constexpr int kTaps = decltype(taps_constant)::value;
                            if (buffers.geometry.axis == 3) {
                              backward_columns<scalar_t, kTaps>(buffers, need_grad_x, need_grad_taps);
                            } else {
                              backward_lines<scalar_t, kTaps>(buffers, need_grad_x, need_grad_taps);
                            }
                          });
}

}  // namespace dhif::cpu::CPU_CAPABILITY
