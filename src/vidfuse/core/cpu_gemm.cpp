#include "vidfuse/core/cpu_gemm.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "vidfuse/core/avx512_vec.h"
#include "vidfuse/core/error.h"

namespace vidfuse::cpu_gemm {

// A named namespace: the unity build puts this file in one translation unit with others.
namespace detail {

constexpr int kCols = 32;  // output columns per weight block: two 16-lane vectors
constexpr int kRows = 12;  // output rows per micro-tile: 12 x 2 accumulators, 24 of 32 registers
// The rows of x a thread works through as one group, kept in L2 beside the weight block they are
// multiplied with (Zen 4 has 1 MB of L2 per core).
constexpr int64_t kRowBytesInL2 = 384 << 10;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

}  // namespace detail
using namespace detail;

struct Gemm::Impl {
  int64_t n = 0, k = 0, blocks = 0;
  DType dtype = DType::F32;
  Act act = Act::None;
  Epilogue epilogue = Epilogue::Store;
  // bf16: [block][K/2 pairs, rounded up][32 columns][2]; fp32: [block][K][32 columns]. Zero past
  // N and K, so every tile computes whole blocks and only its stores are masked.
  std::vector<uint16_t> packed_bf16;
  std::vector<float> packed_f32;
  std::vector<float> bias;  // [blocks * 32] in float32, zero where there is none
};

#if VIDFUSE_AVX512

namespace detail {

using avx512::kAll;
using avx512::load_f;
using avx512::store_f;
using avx512::tail_mask;

// Where a tile's results go and what happens to them on the way.
struct Output {
  Act act;
  Epilogue epilogue;
  const float* bias;
  void* y;
  int64_t ldy;
  const void* other;  // Epilogue::Multiply: [M, N] contiguous
  int64_t n;
};

// erf(u) as u P(u²) / Q(u²) with u clamped to [-4, 4], where float32's erf is ±1 already: the
// rational approximation of Eigen's and TensorFlow's fast erf (absolute error < 1.5e-7 in float32,
// as the Abramowitz & Stegun formula oneDNN's gelu_erf takes), in 17 operations and no e^x, which
// matters because GELU runs on every output of the MLP's largest layer.
VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) __m512 erf(__m512 u) {
  u = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, u, _mm512_set1_ps(-4.0f)),
                          _mm512_set1_ps(4.0f));
  const __m512 u2 = _mm512_mul_ps(u, u);
  __m512 p = _mm512_set1_ps(-2.72614225801306e-10f);
  p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(2.77068142495902e-08f));
  p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(-2.10102402082508e-06f));
  p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(-5.69250639462346e-05f));
  p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(-7.34990630326855e-04f));
  p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(-2.95459980854025e-03f));
  p = _mm512_fmadd_ps(p, u2, _mm512_set1_ps(-1.60960333262415e-02f));
  p = _mm512_mul_ps(p, u);
  __m512 q = _mm512_set1_ps(-1.45660718464996e-05f);
  q = _mm512_fmadd_ps(q, u2, _mm512_set1_ps(-2.13374055278905e-04f));
  q = _mm512_fmadd_ps(q, u2, _mm512_set1_ps(-1.68282697438203e-03f));
  q = _mm512_fmadd_ps(q, u2, _mm512_set1_ps(-7.37332916720468e-03f));
  q = _mm512_fmadd_ps(q, u2, _mm512_set1_ps(-1.42647390514189e-02f));
  __m512 r = _mm512_maskz_rcp14_ps(kAll, q);  // 14 bits, then one Newton step: 28
  r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
  return _mm512_mul_ps(p, r);
}

VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) __m512 activate(__m512 x, Act act) {
  switch (act) {
    case Act::None:
      return x;
    case Act::Relu:
      return _mm512_maskz_max_ps(kAll, x, _mm512_setzero_ps());
    case Act::GeluErf: {  // 0.5 x (1 + erf(x / √2)), as torch::gelu
      const __m512 half_x = _mm512_mul_ps(x, _mm512_set1_ps(0.5f));
      return _mm512_fmadd_ps(half_x, erf(_mm512_mul_ps(x, _mm512_set1_ps(0.70710678118654752f))),
                             half_x);
    }
    case Act::GeluTanh: {
      // 0.5 x (1 + tanh(y)) = x / (1 + e^(-2y)), y = √(2/π) (x + 0.044715 x³).
      const __m512 x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
      const __m512 y = _mm512_mul_ps(_mm512_fmadd_ps(x3, _mm512_set1_ps(0.044715f), x),
                                     _mm512_set1_ps(-2.0f * 0.7978845608028654f));
      return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f), avx512::exp(y)));
    }
    case Act::Silu:
      return _mm512_div_ps(x, _mm512_add_ps(_mm512_set1_ps(1.0f),
                                            avx512::exp(_mm512_sub_ps(_mm512_setzero_ps(), x))));
  }
  return x;
}

// The activation, then the residual add or the product, on an R x 32 tile at (row, col) whose
// accumulators started from the bias; the results are left in `acc` for the caller to store.
// `mask` says which of the 32 columns exist. T is the output's element type.
template <typename T, int R>
VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) void epilogue(
    __m512 (&acc)[R][2], const Output& out, int64_t row, int64_t col, const __mmask16 (&mask)[2]) {
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
#pragma GCC unroll 2
    for (int v = 0; v < 2; ++v) {
      __m512 x = activate(acc[r][v], out.act);
      const int64_t at = col + 16 * v;
      if (out.epilogue == Epilogue::Accumulate)
        x = _mm512_add_ps(x,
                          load_f(static_cast<const T*>(out.y) + (row + r) * out.ldy + at, mask[v]));
      else if (out.epilogue == Epilogue::Multiply)
        x = _mm512_mul_ps(
            x, load_f(static_cast<const T*>(out.other) + (row + r) * out.n + at, mask[v]));
      acc[r][v] = x;
    }
  }
}

// Every accumulator starts from its column's bias.
template <int R>
VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) void start_from_bias(
    __m512 (&acc)[R][2], const Output& out, int64_t col) {
  const __m512 b0 = _mm512_loadu_ps(out.bias + col), b1 = _mm512_loadu_ps(out.bias + col + 16);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    acc[r][0] = b0;
    acc[r][1] = b1;
  }
}

// One R x 32 tile over all of K, bf16: each step multiplies a pair of K (x's two elements as one
// 32-bit broadcast, the block's 32 columns' two elements as two vectors) with vdpbf16ps, float32
// accumulation.
template <int R>
VIDFUSE_TARGET_AVX512_BF16 void tile_bf16(const c10::BFloat16* x, int64_t ldx,
                                          const uint16_t* block, int64_t k, const Output& out,
                                          int64_t row, int64_t col, int64_t cols) {
  __m512 acc[R][2];
  start_from_bias<R>(acc, out, col);
  const int64_t pairs = k / 2;
  const uint16_t* b = block;
  for (int64_t p = 0; p < pairs; ++p, b += 2 * kCols) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + kCols);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      int32_t two;
      std::memcpy(&two, x + r * ldx + 2 * p, sizeof two);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(two);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
    }
  }
  if (k % 2) {  // the last element alone; its pair's other half is zero in the block
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(b);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(b + kCols);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      uint16_t one;
      std::memcpy(&one, x + r * ldx + k - 1, sizeof one);
      const __m512bh a = (__m512bh)_mm512_set1_epi32(one);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], a, b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], a, b1);
    }
  }
  const __mmask16 mask[2] = {tail_mask(cols), tail_mask(cols - 16)};
  epilogue<c10::BFloat16, R>(acc, out, row, col, mask);
  // vcvtneps2bf16 rounds to nearest even, as c10::BFloat16 does (denormals, which it flushes to
  // zero, aside).
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    c10::BFloat16* y = static_cast<c10::BFloat16*>(out.y) + (row + r) * out.ldy + col;
    _mm256_mask_storeu_epi16(y, mask[0], (__m256i)_mm512_cvtneps_pbh(acc[r][0]));
    _mm256_mask_storeu_epi16(y + 16, mask[1], (__m256i)_mm512_cvtneps_pbh(acc[r][1]));
  }
}

// The same for fp32: one element of K per step, FMAs.
template <int R>
VIDFUSE_TARGET_AVX512 void tile_f32(const float* x, int64_t ldx, const float* block, int64_t k,
                                    const Output& out, int64_t row, int64_t col, int64_t cols) {
  __m512 acc[R][2];
  start_from_bias<R>(acc, out, col);
  const float* b = block;
  for (int64_t i = 0; i < k; ++i, b += kCols) {
    const __m512 b0 = _mm512_loadu_ps(b);
    const __m512 b1 = _mm512_loadu_ps(b + 16);
#pragma GCC unroll 12
    for (int r = 0; r < R; ++r) {
      const __m512 a = _mm512_set1_ps(x[r * ldx + i]);
      acc[r][0] = _mm512_fmadd_ps(a, b0, acc[r][0]);
      acc[r][1] = _mm512_fmadd_ps(a, b1, acc[r][1]);
    }
  }
  const __mmask16 mask[2] = {tail_mask(cols), tail_mask(cols - 16)};
  epilogue<float, R>(acc, out, row, col, mask);
#pragma GCC unroll 12
  for (int r = 0; r < R; ++r) {
    float* y = static_cast<float*>(out.y) + (row + r) * out.ldy + col;
    store_f(y, acc[r][0], mask[0]);
    store_f(y + 16, acc[r][1], mask[1]);
  }
}

template <typename T, typename W>
using TileFn = void (*)(const T*, int64_t, const W*, int64_t, const Output&, int64_t, int64_t,
                        int64_t);

// Tiles of 1..12 rows, by row count (the last tile of a task may be short).
template <int R>
struct Bf16Tile {
  static constexpr TileFn<c10::BFloat16, uint16_t> fn = tile_bf16<R>;
};
template <int R>
struct F32Tile {
  static constexpr TileFn<float, float> fn = tile_f32<R>;
};

template <template <int> class Tile, typename Fn>
constexpr Fn tile_for(int rows) {
  constexpr Fn table[kRows + 1] = {
      nullptr,     Tile<1>::fn, Tile<2>::fn, Tile<3>::fn,  Tile<4>::fn,  Tile<5>::fn, Tile<6>::fn,
      Tile<7>::fn, Tile<8>::fn, Tile<9>::fn, Tile<10>::fn, Tile<11>::fn, Tile<12>::fn};
  return table[rows];
}

// The whole product, split statically over ATen's threads, evenly by 12-row tiles (or, where
// there are too few rows for that, by weight blocks), since every tile costs the same. Inside a
// thread's share, rows go in groups that stay in L2, and each weight block is streamed once per
// group and reused by its tiles.
template <typename T, typename W, template <int> class Tile>
void run_tiles(int64_t n, int64_t k, int64_t blocks, int64_t block_elems, const W* packed,
               const T* x, int64_t m, int64_t ldx, const Output& out) {
  const int64_t tiles = ceil_div(m, kRows);
  const int64_t threads = at::get_num_threads();
  const int64_t row_shares = tiles >= 4 * threads || blocks < threads ? threads : 1;
  const int64_t col_shares = threads / row_shares;
  const int64_t group =
      std::max<int64_t>(kRows, kRowBytesInL2 / (k * int64_t(sizeof(T))) / kRows * kRows);
  using Fn = TileFn<T, W>;
  // Rows a multiple of 4 KB apart all fall in the same sets of L1 (the down projection's x, 3072
  // floats), so a tile's twelve rows evict one another there: such rows are copied first, a group
  // at a time, to a panel whose rows are 64 bytes longer (the fp32 down projection: 87 -> 94 % of
  // the peak).
  const bool copy_rows = ldx * int64_t(sizeof(T)) % 4096 == 0;
  const int64_t ldp = k + 64 / int64_t(sizeof(T));
  at::parallel_for(0, row_shares * col_shares, 1, [&](int64_t begin, int64_t end) {
    std::vector<T> panel(copy_rows ? group * ldp : 0);
    for (int64_t share = begin; share < end; ++share) {
      const int64_t rs = share / col_shares, cs = share % col_shares;
      const int64_t r0 = tiles * rs / row_shares * kRows,
                    r1 = std::min(m, tiles * (rs + 1) / row_shares * kRows);
      const int64_t j0 = blocks * cs / col_shares, j1 = blocks * (cs + 1) / col_shares;
      for (int64_t g0 = r0; g0 < r1; g0 += group) {
        const int64_t g1 = std::min(r1, g0 + group);
        const T* xg = x + g0 * ldx;  // the group's rows
        int64_t ldg = ldx;
        if (copy_rows) {
          for (int64_t r = g0; r < g1; ++r)
            std::memcpy(panel.data() + (r - g0) * ldp, x + r * ldx, k * sizeof(T));
          xg = panel.data();
          ldg = ldp;
        }
        for (int64_t j = j0; j < j1; ++j) {
          const W* block = packed + j * block_elems;
          const int64_t col = j * kCols, cols = std::min<int64_t>(kCols, n - col);
          for (int64_t r = g0; r < g1; r += kRows) {
            const int rows = static_cast<int>(std::min<int64_t>(kRows, g1 - r));
            tile_for<Tile, Fn>(rows)(xg + (r - g0) * ldg, ldg, block, k, out, r, col, cols);
          }
        }
      }
    }
  });
}

}  // namespace detail

bool supports(DType dtype) {
  return dtype == DType::BF16 ? avx512::cpu_has_avx512_bf16() : avx512::cpu_has_avx512();
}

#else  // not x86-64 with GCC or Clang

bool supports(DType) { return false; }

#endif

Gemm::Gemm(const void* weight, const void* bias, int64_t n, int64_t k, DType dtype, Act act,
           Epilogue epilogue) {
  if (!cpu_gemm::supports(dtype))
    throw Error(std::string("cpu_gemm: this CPU lacks the instructions for ") +
                (dtype == DType::BF16 ? "bf16 (AVX512-BF16)" : "fp32 (AVX-512)"));
  if (n <= 0 || k <= 0)
    throw Error("cpu_gemm: empty weight [" + std::to_string(n) + ", " + std::to_string(k) + "]");
  auto impl = std::make_shared<Impl>();
  impl->n = n;
  impl->k = k;
  impl->blocks = ceil_div(n, kCols);
  impl->dtype = dtype;
  impl->act = act;
  impl->epilogue = epilogue;
  impl->bias.assign(impl->blocks * kCols, 0.0f);
  if (dtype == DType::BF16) {
    const auto* w = static_cast<const uint16_t*>(weight);
    const int64_t pairs = ceil_div(k, 2);
    impl->packed_bf16.assign(impl->blocks * pairs * 2 * kCols, 0);
    for (int64_t c = 0; c < n; ++c) {
      uint16_t* dst = impl->packed_bf16.data() + c / kCols * pairs * 2 * kCols + c % kCols * 2;
      for (int64_t i = 0; i < k; ++i) dst[i / 2 * 2 * kCols + i % 2] = w[c * k + i];
    }
    if (bias)
      for (int64_t c = 0; c < n; ++c)
        impl->bias[c] = static_cast<float>(static_cast<const c10::BFloat16*>(bias)[c]);
  } else {
    const auto* w = static_cast<const float*>(weight);
    impl->packed_f32.assign(impl->blocks * k * kCols, 0.0f);
    for (int64_t c = 0; c < n; ++c) {
      float* dst = impl->packed_f32.data() + c / kCols * k * kCols + c % kCols;
      for (int64_t i = 0; i < k; ++i) dst[i * kCols] = w[c * k + i];
    }
    if (bias) std::copy_n(static_cast<const float*>(bias), n, impl->bias.begin());
  }
  impl_ = std::move(impl);
}

void Gemm::run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy,
               const void* other) const {
  if (!impl_) throw Error("cpu_gemm: run() on an empty Gemm");
  const Impl& g = *impl_;
  if (ldx < g.k || ldy < g.n)
    throw Error("cpu_gemm: leading dimensions " + std::to_string(ldx) + ", " + std::to_string(ldy) +
                " are shorter than the rows (" + std::to_string(g.k) + ", " + std::to_string(g.n) +
                ")");
  if (g.epilogue == Epilogue::Multiply && !other)
    throw Error("cpu_gemm: the product's other operand is missing");
  if (m <= 0) return;
#if VIDFUSE_AVX512
  const Output out{g.act, g.epilogue, g.bias.data(), y, ldy, other, g.n};
  if (g.dtype == DType::BF16)
    run_tiles<c10::BFloat16, uint16_t, Bf16Tile>(g.n, g.k, g.blocks, ceil_div(g.k, 2) * 2 * kCols,
                                                 g.packed_bf16.data(),
                                                 static_cast<const c10::BFloat16*>(x), m, ldx, out);
  else
    run_tiles<float, float, F32Tile>(g.n, g.k, g.blocks, g.k * kCols, g.packed_f32.data(),
                                     static_cast<const float*>(x), m, ldx, out);
#else
  (void)x, (void)y, (void)other;
#endif
}

}  // namespace vidfuse::cpu_gemm
