#include "vidfuse/models/cpu_kernels.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "vidfuse/core/avx512_vec.h"

#define VIDFUSE_X86_KERNELS VIDFUSE_AVX512

namespace vidfuse::models {

// A named namespace: the unity build puts this file in one translation unit with others.
namespace cpu_kernels_detail {

#if VIDFUSE_X86_KERNELS

// The build targets the x86-64 baseline; these functions are compiled for AVX-512 (and
// AVX512-BF16) on their own and called only where the CPU has it (core/avx512_vec.h).
#define VF_F32 VIDFUSE_TARGET_AVX512
#define VF_BF16 VIDFUSE_TARGET_AVX512_BF16

using avx512::kAll;
using avx512::load_f;
using avx512::store_f;
using avx512::tail_mask;
inline bool cpu_avx512() { return avx512::cpu_has_avx512(); }
inline bool cpu_avx512_bf16() { return avx512::cpu_has_avx512_bf16(); }

// ---------------------------------------------------------------- RoPE

// a · b rounded to float and kept so: GCC implements _mm512_mul_ps as a plain vector product, which
// -ffp-contract=fast (its default) may fuse with the following add into an FMA, and rope_rotate_row
// (baseline x86-64, no FMA) rounds the product first. The empty asm hides the value from that.
VF_F32 inline __m512 rounded_product(__m512 a, __m512 b) {
  __m512 p = _mm512_mul_ps(a, b);
  __asm__("" : "+v"(p));
  return p;
}

// rope_rotate_row's arithmetic, 16 lanes at a time: the tables' chunk loaded once for all rows.
template <typename T>
VF_F32 void rope_rows_avx512(const T* x, int64_t xs, const T* c, const T* s, int64_t half, T* o,
                             int64_t os, int64_t rows) {
  for (int64_t d = 0; d < half; d += 16) {
    const __mmask16 m = tail_mask(half - d);
    const __m512 c1 = load_f(c + d, m), s1 = load_f(s + d, m);
    const __m512 c2 = load_f(c + half + d, m), s2 = load_f(s + half + d, m);
    for (int64_t r = 0; r < rows; ++r) {
      const T* xr = x + r * xs;
      T* orow = o + r * os;
      const __m512 x1 = load_f(xr + d, m), x2 = load_f(xr + half + d, m);
      store_f(orow + d, _mm512_sub_ps(rounded_product(x1, c1), rounded_product(x2, s1)), m);
      store_f(orow + half + d, _mm512_add_ps(rounded_product(x2, c2), rounded_product(x1, s2)), m);
    }
  }
}

// Horizontal sum through memory (GCC 12's _mm512_reduce_* warn, as kAll in core/avx512_vec.h
// says); once per row.
VF_F32 inline float hsum(__m512 x) {
  alignas(64) float t[16];
  _mm512_store_ps(t, x);
  float s = 0;
  for (float v : t) s += v;
  return s;
}
// Horizontal maximum, in registers.
VF_F32 inline float hmax(__m512 x) {
  __m256 h = _mm256_max_ps(_mm512_maskz_extractf32x8_ps(0xFF, x, 0),
                           _mm512_maskz_extractf32x8_ps(0xFF, x, 1));
  __m128 q = _mm_max_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  q = _mm_max_ps(q, _mm_movehl_ps(q, q));
  q = _mm_max_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
// The same of 16 floats in memory, for callers compiled without AVX-512.
VF_F32 inline float hmax(const float* x) { return hmax(_mm512_loadu_ps(x)); }

// ---------------------------------------------------------------- attention

// Scores for R query rows against 16 * NV keys: s[r][j] = Σ_d q[r][d] kt[d][j]. fp32: kt is kᵀ
// [D][np]. bf16: kt holds kᵀ in pairs of d, [D / 2][np] 32-bit units (d even in the low half), and
// q's rows are read in the same pairs, so one vdpbf16ps adds two products per lane.
//
// fp32 also folds the scores into each row's running maximum, mx[16 r .. 16 r + 16) (lanes of 16,
// started at -inf by the `first` chunk of keys; the keys from `valid` on, kᵀ's zero padding, left
// out): the softmax's first pass, done while the scores are in registers.
template <int R, int NV>
VF_F32 void qk_tile(const float* q, int64_t qs, const float* kt, int64_t np, int64_t depth,
                    float* s, int64_t ss, int64_t valid, float* mx, bool first) {
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t d = 0; d < depth; ++d) {
    __m512 kv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) kv[v] = _mm512_loadu_ps(kt + d * np + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 qb = _mm512_set1_ps(q[r * qs + d]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_fmadd_ps(qb, kv[v], acc[r][v]);
    }
  }
  __mmask16 keys[NV];
#pragma GCC unroll 16
  for (int v = 0; v < NV; ++v) keys[v] = tail_mask(valid - 16 * v);
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    __m512 m = first ? _mm512_set1_ps(-INFINITY) : _mm512_loadu_ps(mx + 16 * r);
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      _mm512_storeu_ps(s + r * ss + 16 * v, acc[r][v]);
      m = _mm512_mask_max_ps(m, keys[v], m, acc[r][v]);
    }
    _mm512_storeu_ps(mx + 16 * r, m);
  }
}

template <int R, int NV>
VF_BF16 void qk_tile(const c10::BFloat16* q, int64_t qs, const uint32_t* kt, int64_t np,
                     int64_t depth, float* s, int64_t ss) {
  __m512 acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_setzero_ps();
  for (int64_t dp = 0; dp < depth / 2; ++dp) {
    __m512bh kv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) kv[v] = (__m512bh)_mm512_loadu_si512(kt + dp * np + 16 * v);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      uint32_t pair;
      std::memcpy(&pair, q + r * qs + 2 * dp, sizeof pair);
      const __m512bh qb = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], qb, kv[v]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(s + r * ss + 16 * v, acc[r][v]);
}

// out[r][0 .. 16 NV) = inv[r] · Σ_j p[r][j] v[j][...], p not normalised (softmax_row*).
// fp32: v rows read in place (row stride vs). bf16: p holds bf16 values (nk rounded up to even,
// zero padded), vp holds v in pairs of keys, [nk / 2][D] 32-bit units.
template <int R, int NV, typename T>
VF_F32 void pv_tile(const float* p, int64_t ps, const float* v, int64_t vs, int64_t nk,
                    const float* inv, T* out, int64_t os) {
  __m512 acc[R][NV];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < nk; ++j) {
    __m512 vv[NV];
#pragma GCC unroll 16
    for (int c = 0; c < NV; ++c) vv[c] = _mm512_loadu_ps(v + j * vs + 16 * c);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 pb = _mm512_set1_ps(p[r * ps + j]);
#pragma GCC unroll 16
      for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 16
    for (int c = 0; c < NV; ++c)
      store_f(out + r * os + 16 * c, _mm512_mul_ps(acc[r][c], scale), kAll);
  }
}

template <int R, int NV>
VF_BF16 void pv_tile(const c10::BFloat16* p, int64_t ps, const uint32_t* vp, int64_t vs, int64_t nk,
                     const float* inv, c10::BFloat16* out, int64_t os) {
  __m512 acc[R][NV];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_setzero_ps();
  for (int64_t jp = 0; jp < (nk + 1) / 2; ++jp) {
    __m512bh vv[NV];
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c) vv[c] = (__m512bh)_mm512_loadu_si512(vp + jp * vs + 16 * c);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      uint32_t pair;
      std::memcpy(&pair, p + r * ps + 2 * jp, sizeof pair);
      const __m512bh pb = (__m512bh)_mm512_set1_epi32(static_cast<int>(pair));
#pragma GCC unroll 4
      for (int c = 0; c < NV; ++c) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], pb, vv[c]);
    }
  }
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    const __m512 scale = _mm512_set1_ps(inv[r]);
#pragma GCC unroll 4
    for (int c = 0; c < NV; ++c)
      store_f(out + r * os + 16 * c, _mm512_mul_ps(acc[r][c], scale), kAll);
  }
}

template <int R, int NV>
struct QkTile {
  template <typename... A>
  static void run(A... a) {
    qk_tile<R, NV>(a...);
  }
};
template <int R, int NV>
struct PvTile {
  template <typename... A>
  static void run(A... a) {
    pv_tile<R, NV>(a...);
  }
};

// Calls Tile<r, nv> for a runtime r in 1..R and nv in 1..NV (every shape up to R x NV compiled).
template <template <int, int> class Tile, int R, int NV, typename... Args>
inline void dispatch_up_to(int r, int nv, Args... args) {
  if constexpr (R > 1)
    if (r < R) return dispatch_up_to<Tile, R - 1, NV>(r, nv, args...);
  if constexpr (NV > 1)
    if (nv < NV) return dispatch_up_to<Tile, R, NV - 1>(r, nv, args...);
  Tile<R, NV>::run(args...);
}

// The maximum of a row of scores times scale.
VF_F32 inline float scaled_row_max(const float* s, int64_t n, __m512 scale) {
  __m512 mx = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    mx = _mm512_mask_max_ps(mx, m, mx, _mm512_mul_ps(_mm512_maskz_loadu_ps(m, s + j), scale));
  }
  return hmax(mx);
}

// Softmax of one row of fp32 scores in place, not normalised, as powers of two: s = 2^t with
// t = s·c − m (one FMA; c = scale · log2 e, m the row's maximum of s·c, so t <= 0), t = k + f
// with k an integer and |f| <= 1/2, 2^f by a degree-6 polynomial fitted to it on [-1/2, 1/2]
// (relative error < 8e-8 evaluated in float32, about one rounding), scaled by 2^k: 7 FMAs a vector
// where e^x by avx512::exp<7> takes 11. t is clamped at -126 (2^-126 is float32's least normal;
// a NaN becomes -126 too, as exp's clamp does). Returns 1 / Σ, by which the product with v is
// scaled.
VF_F32 float softmax_row_exp2(float* s, int64_t n, float c, float m) {
  constexpr float k[7] = {1.0f,
                          0.6931471824645996f,
                          0.24022646248340607f,
                          0.05550328642129898f,
                          0.009618486277759075f,
                          0.0013399936724454165f,
                          0.00015346467262133956f};
  const __m512 cv = _mm512_set1_ps(c), mv = _mm512_set1_ps(m), lo = _mm512_set1_ps(-126.0f);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 mk = tail_mask(n - j);
    const __m512 t =
        _mm512_maskz_max_ps(kAll, _mm512_fmsub_ps(_mm512_maskz_loadu_ps(mk, s + j), cv, mv), lo);
    const __m512 ti =
        _mm512_maskz_roundscale_ps(kAll, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, ti);
    __m512 p = _mm512_set1_ps(k[6]);
#pragma GCC unroll 8
    for (int i = 5; i >= 0; --i) p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(k[i]));
    const __m512 e = _mm512_maskz_scalef_ps(kAll, p, ti);
    _mm512_mask_storeu_ps(s + j, mk, e);
    sum = _mm512_mask_add_ps(sum, mk, sum, e);
  }
  return 1.0f / hsum(sum);
}

// The row's maximum first, where the scores' own maxima are not at hand (scale <= 0).
VF_F32 float softmax_row(float* s, int64_t n, float c) {
  return softmax_row_exp2(s, n, c, scaled_row_max(s, n, _mm512_set1_ps(c)));
}

// The same for the bf16 kernel, straight to bf16 in p (vcvtneps2bf16: to nearest even; it flushes
// subnormals, which e^x >= e^-87 never is), the odd key count padded with a zero: no float row is
// written, and no second pass normalises (Σ is over the float values, as before the rounding).
VF_BF16 float softmax_row_bf16(const float* s, int64_t n, float scale, c10::BFloat16* p) {
  const __m512 sc = _mm512_set1_ps(scale);
  const __m512 row_max = _mm512_set1_ps(scaled_row_max(s, n, sc));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < n; j += 16) {
    const __mmask16 m = tail_mask(n - j);
    const __m512 e = avx512::exp<5>(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(m, s + j), sc, row_max));
    _mm256_mask_storeu_epi16(p + j, m, (__m256i)_mm512_cvtneps_pbh(e));
    sum = _mm512_mask_add_ps(sum, m, sum, e);
  }
  if (n % 2) p[n] = c10::BFloat16(0.0f);
  return 1.0f / hsum(sum);
}

// n values at a 64-byte boundary: a 512-bit access across two cache lines costs two.
template <typename T>
class Aligned64 {
 public:
  explicit Aligned64(size_t n) : buf_(n + 64 / sizeof(T)) {
    const auto a = reinterpret_cast<uintptr_t>(buf_.data());
    p_ = buf_.data() + ((64 - a % 64) % 64) / sizeof(T);
  }
  T* data() { return p_; }

 private:
  std::vector<T> buf_;
  T* p_;
};

// Strides of a [B, H, N, D] operand, in elements.
struct Operand {
  int64_t b, h, n;
  explicit Operand(const torch::Tensor& t) : b(t.stride(0)), h(t.stride(1)), n(t.stride(2)) {}
  int64_t at(int64_t bi, int64_t hi) const { return bi * b + hi * h; }
};

constexpr int64_t kQueryBlock = 64;

// The fp32 kernel takes kGroupF query rows at a time through scores, softmax and product (their
// scores, 12 x 208 floats at 201 keys, stay in L1), in register blocks of kRowsQkF rows x 16
// kVecsQkF keys for the scores and kRowsPvF rows x 16 kVecsPvF columns of v for the product (up
// to 24 accumulators of the 32 vector registers; Zen 4 issues one 512-bit FMA per cycle, and
// these blocks run at its peak on data in L1 or L2).
constexpr int64_t kGroupF = 12;
constexpr int kRowsQkF = 4;
constexpr int kRowsPvF = 6;
constexpr int kVecsQkF = 4;
constexpr int kVecsPvF = 4;

// ---------------------------------------------------------------- packing

// The 16 x 16 32-bit matrix in r transposed in registers: r[i] lane c -> r[c] lane i. Pairs of
// rows interleaved 32 and 64 bits at a time, then the 128-bit quarters moved across rows.
VF_F32 inline void transpose16(__m512i r[16]) {
  __m512i t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_epi32(kAll, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_epi32(kAll, r[2 * i], r[2 * i + 1]);
  }
  // r[4g + k], quarter l: rows 4g .. 4g + 3 at column 4l + k.
#pragma GCC unroll 4
  for (int g = 0; g < 4; ++g) {
    r[4 * g] = _mm512_maskz_unpacklo_epi64(0xFF, t[4 * g], t[4 * g + 2]);
    r[4 * g + 1] = _mm512_maskz_unpackhi_epi64(0xFF, t[4 * g], t[4 * g + 2]);
    r[4 * g + 2] = _mm512_maskz_unpacklo_epi64(0xFF, t[4 * g + 1], t[4 * g + 3]);
    r[4 * g + 3] = _mm512_maskz_unpackhi_epi64(0xFF, t[4 * g + 1], t[4 * g + 3]);
  }
  // Column 4l + k gathers quarter l of r[k], r[4 + k], r[8 + k], r[12 + k].
#pragma GCC unroll 4
  for (int k = 0; k < 4; ++k) {
    const __m512i x0 = _mm512_maskz_shuffle_i32x4(kAll, r[k], r[4 + k], 0x44);
    const __m512i x1 = _mm512_maskz_shuffle_i32x4(kAll, r[k], r[4 + k], 0xEE);
    const __m512i y0 = _mm512_maskz_shuffle_i32x4(kAll, r[8 + k], r[12 + k], 0x44);
    const __m512i y1 = _mm512_maskz_shuffle_i32x4(kAll, r[8 + k], r[12 + k], 0xEE);
    t[k] = _mm512_maskz_shuffle_i32x4(kAll, x0, y0, 0x88);
    t[4 + k] = _mm512_maskz_shuffle_i32x4(kAll, x0, y0, 0xDD);
    t[8 + k] = _mm512_maskz_shuffle_i32x4(kAll, x1, y1, 0x88);
    t[12 + k] = _mm512_maskz_shuffle_i32x4(kAll, x1, y1, 0xDD);
  }
#pragma GCC unroll 16
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// 16 rows of `width` 32-bit units (a key's D floats, or its D / 2 bf16 pairs) -> columns:
// out[c * np + i] = rows[i][c], 16 keys per column.
VF_F32 void transpose_rows(const uint32_t* const rows[16], int64_t width, uint32_t* out,
                           int64_t np) {
  for (int64_t c0 = 0; c0 < width; c0 += 16) {
    const __mmask16 m = tail_mask(width - c0);
    __m512i r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) r[i] = _mm512_maskz_loadu_epi32(m, rows[i] + c0);
    transpose16(r);
    const int64_t cols = std::min<int64_t>(16, width - c0);
    for (int64_t c = 0; c < cols; ++c) _mm512_storeu_si512(out + (c0 + c) * np, r[c]);
  }
}

// Two rows of D bf16 values (keys j, j + 1; r1 null past the last key) interleaved into pairs:
// out[d] = r0[d] | r1[d] << 16, the layout vdpbf16ps takes for the product with v.
VF_F32 void interleave_pairs(const c10::BFloat16* r0, const c10::BFloat16* r1, int64_t dim,
                             uint32_t* out) {
  for (int64_t d = 0; d < dim; d += 16) {
    const __m512i a =
        _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256((const __m256i*)(r0 + d)));
    __m512i b = _mm512_setzero_si512();
    if (r1)
      b = _mm512_maskz_slli_epi32(
          kAll, _mm512_maskz_cvtepu16_epi32(kAll, _mm256_loadu_si256((const __m256i*)(r1 + d))),
          16);
    _mm512_storeu_si512(out + d, _mm512_or_si512(a, b));
  }
}

// RoPE applied by the kernel as it reads q and k (rope_qkv's arithmetic in models/dinov3.cpp: float
// products, rounded to T): tokens from `prefix` on are rotated by the tables' row t − prefix.
template <typename T>
struct RopeIn {
  const T *cos = nullptr, *sin = nullptr;
  int64_t prefix = 0;
  // Row `t` of x (D values) rotated into o, or x itself before the prefix / without tables.
  const T* row(const T* x, int64_t t, int64_t dim, T* o) const {
    if (!cos || t < prefix) return x;
    rope_rotate_rows(x, dim, cos + (t - prefix) * dim, sin + (t - prefix) * dim, dim / 2, o, dim,
                     1);
    return o;
  }
};

template <typename T>
void fused_attention_impl(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                          float scale, torch::Tensor& out, const RopeIn<T>& rope = {}) {
  constexpr bool bf16 = std::is_same_v<T, c10::BFloat16>;
  const int64_t B = q.size(0), H = q.size(1), nq = q.size(2), D = q.size(3), nk = k.size(2);
  const int64_t np = (nk + 15) / 16 * 16;  // keys padded to whole vectors (zero keys, masked)
  const int64_t np2 = (nk + 1) / 2 * 2;    // bf16 probabilities: keys in pairs
  const Operand qs(q), ks(k), vs(v);
  const T *qp = q.data_ptr<T>(), *kp = k.data_ptr<T>(), *vp = v.data_ptr<T>();
  T* op = out.data_ptr<T>();
  const int64_t os = H * D;
  const int64_t blocks = (nq + kQueryBlock - 1) / kQueryBlock;
  // A parallel region waits for every thread: keep small problems on the calling thread.
  const int64_t block_work = std::min(nq, kQueryBlock) * nk * D;
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 21) / std::max<int64_t>(1, block_work));
  at::parallel_for(0, B * H * blocks, grain, [&](int64_t begin, int64_t end) {
    // kᵀ (fp32 [D][np]; bf16 [D/2][np] pairs) and, for bf16, v in pairs of keys: packed once per
    // head and reused by the consecutive blocks of that head. bf16: the block's scores and
    // probabilities; fp32: the row group's scores (kᵀ and they at cache line boundaries) and
    // maxima, in lanes of 16.
    std::vector<float> scores(bf16 ? kQueryBlock * np : 0), inv(kQueryBlock);
    Aligned64<float> kt_f(bf16 ? 0 : D * np), sc_f(bf16 ? 0 : kGroupF * np);
    std::vector<float> row_max(bf16 ? 0 : 16 * kGroupF);
    std::vector<uint32_t> kt_p(bf16 ? D / 2 * np : 0), v_p(bf16 ? np2 / 2 * D : 0);
    std::vector<c10::BFloat16> probs(bf16 ? kQueryBlock * np2 : 0);
    // With RoPE: the block's rotated q rows, and 16 rotated k rows; a row of zero keys.
    std::vector<T> q_rot(rope.cos ? kQueryBlock * D : 0), k_rot(16 * D);
    const std::vector<uint32_t> zero_row(D, 0u);
    int64_t packed = -1;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t bh = task / blocks, i0 = (task % blocks) * kQueryBlock;
      const int64_t b = bh / H, h = bh % H, rows = std::min(kQueryBlock, nq - i0);
      if (bh != packed) {
        packed = bh;
        // kᵀ 16 keys at a time (RoPE applied to each first), the keys past nk zero.
        const T* kh = kp + ks.at(b, h);
        uint32_t* kt = bf16 ? kt_p.data() : reinterpret_cast<uint32_t*>(kt_f.data());
        for (int64_t j0 = 0; j0 < np; j0 += 16) {
          const uint32_t* key_rows[16];
          for (int64_t i = 0; i < 16; ++i) {
            const int64_t j = j0 + i;
            key_rows[i] = j < nk ? reinterpret_cast<const uint32_t*>(
                                       rope.row(kh + j * ks.n, j, D, k_rot.data() + i * D))
                                 : zero_row.data();
          }
          transpose_rows(key_rows, bf16 ? D / 2 : D, kt, np);
          kt += 16;
        }
        if constexpr (bf16) {
          const T* vh = vp + vs.at(b, h);
          for (int64_t jp = 0; jp < np2 / 2; ++jp)
            interleave_pairs(vh + 2 * jp * vs.n,
                             2 * jp + 1 < nk ? vh + (2 * jp + 1) * vs.n : nullptr, D,
                             v_p.data() + jp * D);
        }
      }
      const T* qb = qp + qs.at(b, h) + i0 * qs.n;
      int64_t qstride = qs.n;
      if (rope.cos) {
        for (int64_t i = 0; i < rows; ++i) {
          T* dst = q_rot.data() + i * D;
          const T* r = rope.row(qb + i * qs.n, i0 + i, D, dst);
          if (r != dst) std::copy(r, r + D, dst);
        }
        qb = q_rot.data();
        qstride = D;
      }
      T* ob = op + (b * nq + i0) * os + h * D;
      if constexpr (bf16) {
        for (int64_t r0 = 0; r0 < rows; r0 += 4) {
          const int r = static_cast<int>(std::min<int64_t>(4, rows - r0));
          for (int64_t j0 = 0; j0 < np; j0 += 64) {
            const int nv = static_cast<int>(std::min<int64_t>(4, (np - j0) / 16));
            dispatch_up_to<QkTile, 4, 4>(r, nv, qb + r0 * qstride, qstride, kt_p.data() + j0, np, D,
                                         scores.data() + r0 * np + j0, np);
          }
        }
        for (int64_t i = 0; i < rows; ++i)
          inv[i] = softmax_row_bf16(scores.data() + i * np, nk, scale, probs.data() + i * np2);
        for (int64_t r0 = 0; r0 < rows; r0 += 4) {
          const int r = static_cast<int>(std::min<int64_t>(4, rows - r0));
          for (int64_t d0 = 0; d0 < D; d0 += 64) {
            const int nv = static_cast<int>(std::min<int64_t>(4, (D - d0) / 16));
            dispatch_up_to<PvTile, 4, 4>(r, nv, probs.data() + r0 * np2, np2, v_p.data() + d0, D,
                                         nk, inv.data() + r0, ob + r0 * os + d0, os);
          }
        }
      } else {
        // A group of rows at a time through all three steps, so that its scores stay in L1.
        const float* vh = vp + vs.at(b, h);  // read in place: a packed copy measured slower
        for (int64_t g0 = 0; g0 < rows; g0 += kGroupF) {
          const int64_t g = std::min<int64_t>(kGroupF, rows - g0);
          // The next head's queries, keys and values towards L2 while this one computes, a share
          // of them per group of rows, one row after each tile of scores: their first reads
          // (packing kᵀ, the first product with v) would wait on memory, where the hardware
          // prefetchers cannot guess the jump; issued at once, the prefetches wait on each other.
          int64_t pf = (i0 + g0) * nk / nq, pf_end = (i0 + g0 + g) * nk / nq;
          if (bh + 1 >= B * H) pf_end = pf;  // the last head: nothing to fetch
          const int64_t next = std::min(bh + 1, B * H - 1), nb = next / H, nh = next % H;
          const T *kn = kp + ks.at(nb, nh), *vn = vp + vs.at(nb, nh), *qn = qp + qs.at(nb, nh);
          auto prefetch_next = [&] {
            if (pf >= pf_end) return;
            for (int64_t d = 0; d < D; d += 64 / sizeof(T)) {
              __builtin_prefetch(kn + pf * ks.n + d, 0, 2);
              __builtin_prefetch(vn + pf * vs.n + d, 0, 2);
              if (pf < nq) __builtin_prefetch(qn + pf * qs.n + d, 0, 2);
            }
            ++pf;
          };
          for (int64_t r0 = 0; r0 < g; r0 += kRowsQkF) {
            const int r = static_cast<int>(std::min<int64_t>(kRowsQkF, g - r0));
            for (int64_t j0 = 0; j0 < np; j0 += 16 * kVecsQkF) {
              const int nv = static_cast<int>(std::min<int64_t>(kVecsQkF, (np - j0) / 16));
              dispatch_up_to<QkTile, kRowsQkF, kVecsQkF>(
                  r, nv, qb + (g0 + r0) * qstride, qstride, kt_f.data() + j0, np, D,
                  sc_f.data() + r0 * np + j0, np, nk - j0, row_max.data() + 16 * r0, j0 == 0);
              prefetch_next();
            }
          }
          while (pf < pf_end) prefetch_next();
          const float c = scale * 1.44269504088896341f;  // scale · log2 e
          for (int64_t i = 0; i < g; ++i) {
            float* s = sc_f.data() + i * np;
            // max(s · c) = max(s) · c for c > 0, rounding being monotonic.
            if (c > 0)
              inv[i] = softmax_row_exp2(s, nk, c, hmax(row_max.data() + 16 * i) * c);
            else
              inv[i] = softmax_row(s, nk, c);
          }
          for (int64_t r0 = 0; r0 < g; r0 += kRowsPvF) {
            const int r = static_cast<int>(std::min<int64_t>(kRowsPvF, g - r0));
            for (int64_t d0 = 0; d0 < D; d0 += 16 * kVecsPvF) {
              const int nv = static_cast<int>(std::min<int64_t>(kVecsPvF, (D - d0) / 16));
              dispatch_up_to<PvTile, kRowsPvF, kVecsPvF>(r, nv, sc_f.data() + r0 * np, np, vh + d0,
                                                         vs.n, nk, inv.data() + r0,
                                                         ob + (g0 + r0) * os + d0, os);
            }
          }
        }
      }
    }
  });
}

// ---------------------------------------------------------------- LayerNorm

template <typename T>
VF_F32 void layer_norm_rows(const T* x, T* y, const float* w, const float* b, int64_t c, float eps,
                            int64_t begin, int64_t end) {
  for (int64_t row = begin; row < end; ++row) {
    const T* xr = x + row * c;
    T* yr = y + row * c;
    // Two passes over a row that stays in L1: the mean, then the variance about it (as ATen's
    // Welford result, without one pass's cancellation).
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < c; j += 16) sum = _mm512_add_ps(sum, load_f(xr + j, tail_mask(c - j)));
    const float mean = hsum(sum) / static_cast<float>(c);
    const __m512 mv = _mm512_set1_ps(mean);
    __m512 sq = _mm512_setzero_ps();
    for (int64_t j = 0; j < c; j += 16) {
      const __mmask16 m = tail_mask(c - j);
      const __m512 d = _mm512_maskz_sub_ps(m, load_f(xr + j, m), mv);
      sq = _mm512_fmadd_ps(d, d, sq);
    }
    const float rstd = 1.0f / std::sqrt(hsum(sq) / static_cast<float>(c) + eps);
    const __m512 rs = _mm512_set1_ps(rstd);
    for (int64_t j = 0; j < c; j += 16) {
      const __mmask16 m = tail_mask(c - j);
      const __m512 n = _mm512_mul_ps(_mm512_sub_ps(load_f(xr + j, m), mv), rs);
      store_f(yr + j,
              _mm512_fmadd_ps(n, _mm512_maskz_loadu_ps(m, w + j), _mm512_maskz_loadu_ps(m, b + j)),
              m);
    }
  }
}

#endif  // VIDFUSE_X86_KERNELS

bool cpu_dtype_ok(torch::ScalarType t) {
#if VIDFUSE_X86_KERNELS
  if (t == torch::kFloat32) return cpu_avx512();
  if (t == torch::kBFloat16) return cpu_avx512_bf16();
#endif
  (void)t;
  return false;
}

template <typename T>
void rope_rotate_rows_impl(const T* x, int64_t xs, const T* c, const T* s, int64_t half, T* o,
                           int64_t os, int64_t rows) {
#if VIDFUSE_X86_KERNELS
  if (cpu_avx512()) return rope_rows_avx512(x, xs, c, s, half, o, os, rows);
#endif
  for (int64_t r = 0; r < rows; ++r) rope_rotate_row(x + r * xs, c, s, half, o + r * os);
}

}  // namespace cpu_kernels_detail

namespace ck = cpu_kernels_detail;

bool fused_attention_supports(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v) {
  if (q.dim() != 4 || k.dim() != 4 || v.dim() != 4) return false;
  if (!q.device().is_cpu() || !k.device().is_cpu() || !v.device().is_cpu()) return false;
  const auto t = q.scalar_type();
  if (k.scalar_type() != t || v.scalar_type() != t || !ck::cpu_dtype_ok(t)) return false;
  const int64_t D = q.size(3);
  if (D == 0 || D % 16 != 0 || k.size(3) != D || v.size(3) != D) return false;
  for (int i = 0; i < 2; ++i)
    if (k.size(i) != q.size(i) || v.size(i) != q.size(i)) return false;
  if (k.size(2) != v.size(2) || k.size(2) == 0 || q.size(2) == 0) return false;
  return q.stride(3) == 1 && k.stride(3) == 1 && v.stride(3) == 1;
}

torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, double scale) {
  TORCH_CHECK(fused_attention_supports(q, k, v),
              "fused_attention: unsupported inputs (see fused_attention_supports)");
  RECORD_FUNCTION("vidfuse::fused_attention", std::vector<c10::IValue>());  // named in profiles
  const int64_t B = q.size(0), H = q.size(1), nq = q.size(2), D = q.size(3);
  torch::Tensor out = torch::empty({B, nq, H * D}, q.options());
#if VIDFUSE_X86_KERNELS
  if (q.scalar_type() == torch::kFloat32)
    ck::fused_attention_impl<float>(q, k, v, static_cast<float>(scale), out);
  else
    ck::fused_attention_impl<c10::BFloat16>(q, k, v, static_cast<float>(scale), out);
#endif
  return out;
}

torch::Tensor fused_rope_attention(const torch::Tensor& qkv, int64_t batch, int64_t heads,
                                   const torch::Tensor& cos_in, const torch::Tensor& sin_in,
                                   double scale) {
  RECORD_FUNCTION("vidfuse::fused_attention", std::vector<c10::IValue>());
  TORCH_CHECK(qkv.dim() == 2 && qkv.is_contiguous() && qkv.size(0) % batch == 0 &&
                  qkv.size(1) % (3 * heads) == 0,
              "fused_rope_attention: qkv must be contiguous [B * N, 3 * H * D]");
  const int64_t n = qkv.size(0) / batch, dim = qkv.size(1) / (3 * heads);
  const torch::Tensor parts = qkv.view({batch, n, 3, heads, dim});
  const torch::Tensor q = parts.select(2, 0).transpose(1, 2),
                      k = parts.select(2, 1).transpose(1, 2),
                      v = parts.select(2, 2).transpose(1, 2);
  TORCH_CHECK(fused_attention_supports(q, k, v) && dim % 2 == 0,
              "fused_rope_attention: unsupported inputs (see fused_attention_supports)");
  const torch::Tensor cos = cos_in.to(qkv.scalar_type()).contiguous();
  const torch::Tensor sin = sin_in.to(qkv.scalar_type()).contiguous();
  TORCH_CHECK(
      cos.dim() == 2 && cos.size(1) == dim && cos.size(0) <= n && sin.sizes() == cos.sizes(),
      "fused_rope_attention: cos and sin must be [P <= N, D]");
  torch::Tensor out = torch::empty({batch, n, heads * dim}, qkv.options());
#if VIDFUSE_X86_KERNELS
  if (qkv.scalar_type() == torch::kFloat32) {
    ck::RopeIn<float> rope{cos.data_ptr<float>(), sin.data_ptr<float>(), n - cos.size(0)};
    ck::fused_attention_impl<float>(q, k, v, static_cast<float>(scale), out, rope);
  } else {
    ck::RopeIn<c10::BFloat16> rope{cos.data_ptr<c10::BFloat16>(), sin.data_ptr<c10::BFloat16>(),
                                   n - cos.size(0)};
    ck::fused_attention_impl<c10::BFloat16>(q, k, v, static_cast<float>(scale), out, rope);
  }
#endif
  return out;
}

void rope_rotate_rows(const float* x, int64_t x_stride, const float* c, const float* s,
                      int64_t half, float* o, int64_t o_stride, int64_t rows) {
  ck::rope_rotate_rows_impl(x, x_stride, c, s, half, o, o_stride, rows);
}
void rope_rotate_rows(const c10::BFloat16* x, int64_t x_stride, const c10::BFloat16* c,
                      const c10::BFloat16* s, int64_t half, c10::BFloat16* o, int64_t o_stride,
                      int64_t rows) {
  ck::rope_rotate_rows_impl(x, x_stride, c, s, half, o, o_stride, rows);
}

bool rope_rotate_vectorised() {
#if VIDFUSE_X86_KERNELS
  return ck::cpu_avx512();
#else
  return false;
#endif
}

bool rows_layer_norm_supports(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias) {
  if (!x.device().is_cpu() || !x.is_contiguous() || x.dim() < 1 || x.numel() == 0) return false;
  if (!ck::cpu_dtype_ok(x.scalar_type())) return false;
  const int64_t c = x.size(-1);
  return weight.defined() && bias.defined() && weight.numel() == c && bias.numel() == c;
}

torch::Tensor rows_layer_norm(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias, double eps) {
  TORCH_CHECK(rows_layer_norm_supports(x, weight, bias),
              "rows_layer_norm: unsupported inputs (see rows_layer_norm_supports)");
  RECORD_FUNCTION("vidfuse::rows_layer_norm", std::vector<c10::IValue>());
  torch::Tensor y = torch::empty_like(x);
#if VIDFUSE_X86_KERNELS
  const torch::Tensor w = weight.to(torch::kFloat32).contiguous();
  const torch::Tensor b = bias.to(torch::kFloat32).contiguous();
  const int64_t c = x.size(-1), rows = x.numel() / c;
  const float* wp = w.data_ptr<float>();
  const float* bp = b.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, 16384 / c);
  if (x.scalar_type() == torch::kFloat32) {
    const float* xp = x.data_ptr<float>();
    float* yp = y.data_ptr<float>();
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      ck::layer_norm_rows(xp, yp, wp, bp, c, static_cast<float>(eps), begin, end);
    });
  } else {
    const c10::BFloat16* xp = x.data_ptr<c10::BFloat16>();
    c10::BFloat16* yp = y.data_ptr<c10::BFloat16>();
    at::parallel_for(0, rows, grain, [&](int64_t begin, int64_t end) {
      ck::layer_norm_rows(xp, yp, wp, bp, c, static_cast<float>(eps), begin, end);
    });
  }
#endif
  return y;
}

}  // namespace vidfuse::models
