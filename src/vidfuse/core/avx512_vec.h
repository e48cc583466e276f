// AVX-512 vector helpers shared by the hand-written CPU kernels (core/cpu_gemm.cpp,
// models/cpu_kernels.cpp): masked loads and stores of fp32 and bf16 as float32 vectors, and e^x.
//
// The build targets the x86-64 baseline. Everything here is compiled for AVX-512 (F, BW, VL, DQ)
// through function attributes, inlined into kernels that carry at least that target, and called
// only where the CPU has it (vidfuse::avx512::cpu_has_avx512()).
#pragma once
#if defined(__x86_64__) && defined(__GNUC__)
#include <c10/util/BFloat16.h>
#include <immintrin.h>

#include <cstdint>

#define VIDFUSE_AVX512 1
#define VIDFUSE_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define VIDFUSE_TARGET_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx512bf16")))

namespace vidfuse::avx512 {

inline bool cpu_has_avx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  return ok;
}
inline bool cpu_has_avx512_bf16() {
  static const bool ok = cpu_has_avx512() && __builtin_cpu_supports("avx512bf16");
  return ok;
}

// All lanes. The masked forms of the intrinsics are used where the plain ones start from
// _mm512_undefined_*(), which GCC 12 reports as an uninitialised read (a false positive).
constexpr __mmask16 kAll = 0xFFFF;

// The first n lanes (none for n <= 0, all for n >= 16).
inline __attribute__((always_inline)) __mmask16 tail_mask(int64_t n) {
  return n >= 16 ? __mmask16(0xFFFF) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}

VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) __m512 load_f(const float* p,
                                                                          __mmask16 m) {
  return _mm512_maskz_loadu_ps(m, p);
}
VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) __m512 load_f(const c10::BFloat16* p,
                                                                          __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  return _mm512_castsi512_ps(
      _mm512_maskz_slli_epi32(kAll, _mm512_maskz_cvtepu16_epi32(kAll, h), 16));
}
VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) void store_f(float* p, __m512 x,
                                                                         __mmask16 m) {
  _mm512_mask_storeu_ps(p, m, x);
}
// To bf16 rounding to nearest even (as c10::BFloat16), NaN kept NaN; AVX-512F/BW only, so fp32
// kernels need no AVX512-BF16 for it.
VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) void store_f(c10::BFloat16* p, __m512 x,
                                                                         __mmask16 m) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_maskz_srli_epi32(kAll, u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_maskz_srli_epi32(
      kAll, _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC0));
  _mm256_mask_storeu_epi16(p, m, _mm512_maskz_cvtepi32_epi16(kAll, r));
}

// e^x: x = n ln2 + r, |r| <= ln2 / 2, e^r by its Taylor polynomial to degree Degree, scaled by
// 2^n. Degree 7: error < 1e-8 relative, for float32 results; 5: < 3e-6, for values rounded to
// bf16's 8 bits (2e-3) anyway. x is clamped to [-87, 88], where float32's e^x stays finite and
// normal (below, the result is < 2e-38 instead of 0 or a denormal).
template <int Degree = 7>
VIDFUSE_TARGET_AVX512 inline __attribute__((always_inline)) __m512 exp(__m512 x) {
  static_assert(Degree >= 1 && Degree <= 7);
  constexpr float inv_factorial[8] = {1.0f,      1.0f,       1.0f / 2,   1.0f / 6,
                                      1.0f / 24, 1.0f / 120, 1.0f / 720, 1.0f / 5040};
  x = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, x, _mm512_set1_ps(-87.0f)),
                          _mm512_set1_ps(88.0f));
  const __m512 n =
      _mm512_maskz_roundscale_ps(kAll, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
  __m512 p = _mm512_set1_ps(inv_factorial[Degree]);
#pragma GCC unroll 8
  for (int k = Degree - 1; k >= 0; --k) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(inv_factorial[k]));
  return _mm512_maskz_scalef_ps(kAll, p, n);
}

}  // namespace vidfuse::avx512
#else
#define VIDFUSE_AVX512 0
#endif
