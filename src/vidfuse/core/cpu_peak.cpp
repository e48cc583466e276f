#include "vidfuse/core/cpu_peak.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

namespace vidfuse {

namespace {

using Clock = std::chrono::steady_clock;

// The lanes' sum (GCC 12's _mm512_reduce_add_ps warns of an uninitialised value at -O3).
__attribute__((target("avx512f"))) float sum_lanes(__m512 v) {
  alignas(64) float out[16];
  _mm512_store_ps(out, v);
  float r = 0;
  for (float x : out) r += x;
  return r;
}

// 12 independent accumulators, kept in registers (the unrolled loop): enough to cover the FMA
// latency (4 cycles) on two pipes.
// Returns a value derived from the accumulators so that the loop is not optimised away.
__attribute__((target("avx512f"))) float fma_loop_avx512(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 m = _mm512_set1_ps(0.999999f), a = _mm512_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_fmadd_ps(acc[i], m, a);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return sum_lanes(s);
}

__attribute__((target("avx2,fma"))) float fma_loop_avx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 m = _mm256_set1_ps(0.999999f), a = _mm256_set1_ps(1e-7f);
  for (int64_t k = 0; k < iters; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, a);
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  float r = 0;
  for (float v : out) r += v;
  return r;
}

// vdpbf16ps: per fp32 lane, two bf16 products added to the accumulator (4 FLOP per lane).
__attribute__((target("avx512f,avx512bf16"))) float dpbf16_loop(int64_t iters) {
  __m512 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512bh x = _mm512_cvtne2ps_pbh(_mm512_set1_ps(1e-3f), _mm512_set1_ps(1e-3f));
  for (int64_t k = 0; k < iters; ++k)
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm512_dpbf16_ps(acc[i], x, x);
  __m512 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
  return sum_lanes(s);
}

// A chain of dependent adds retires one per cycle on every x86 core of the last decade: adds per
// second is the clock the core runs at while busy (boost included).
uint64_t add_chain(int64_t iters) {
  uint64_t x = 0;
  for (int64_t k = 0; k < iters; ++k)
    asm volatile(
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
        : "+r"(x));
  return x;
}

// Runs `work(iters)` on `threads` threads started together; returns the slowest thread's seconds.
template <class F>
double timed_on_threads(int threads, int64_t iters, F work) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<double> seconds(static_cast<size_t>(threads), 0.0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) {
      }
      const auto t0 = Clock::now();
      volatile auto sink = work(iters);
      (void)sink;
      seconds[static_cast<size_t>(t)] = std::chrono::duration<double>(Clock::now() - t0).count();
    });
  while (ready.load() < threads) std::this_thread::yield();
  go.store(true, std::memory_order_release);
  for (auto& th : pool) th.join();
  return *std::max_element(seconds.begin(), seconds.end());
}

// Best (shortest) time over three runs of a loop sized to take ~0.2 s on its first run.
template <class F>
double best_seconds(int threads, int64_t& iters, F work) {
  iters = 1 << 16;
  while (timed_on_threads(threads, iters, work) < 0.05) iters *= 2;
  iters *= 4;
  double best = 1e30;
  for (int r = 0; r < 3; ++r) best = std::min(best, timed_on_threads(threads, iters, work));
  return best;
}

}  // namespace

CpuPeak measure_cpu_peak(const std::string& dtype, int threads) {
  CpuPeak p;
  p.threads = std::max(1, threads);
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool bf16 = avx512 && __builtin_cpu_supports("avx512bf16");
  double flop_per_iter = 0;
  float (*loop)(int64_t) = nullptr;
  if (dtype == "bf16" && bf16) {
    p.instruction = "vdpbf16ps zmm";
    loop = dpbf16_loop;
    flop_per_iter = 12.0 * 16 * 4;
  } else if (dtype == "fp32" && avx512) {
    p.instruction = "vfmadd231ps zmm";
    loop = fma_loop_avx512;
    flop_per_iter = 12.0 * 16 * 2;
  } else if (dtype == "fp32" && avx2) {
    p.instruction = "vfmadd231ps ymm";
    loop = fma_loop_avx2;
    flop_per_iter = 12.0 * 8 * 2;
  } else {
    return p;
  }
  int64_t iters = 0;
  const double s = best_seconds(p.threads, iters, loop);
  p.gflops = flop_per_iter * static_cast<double>(iters) * p.threads / s / 1e9;
  int64_t add_iters = 0;
  const double add_s = best_seconds(p.threads, add_iters, add_chain);
  p.clock_ghz = 16.0 * static_cast<double>(add_iters) / add_s / 1e9;
  p.flop_per_cycle = p.gflops / (p.clock_ghz * p.threads);
  return p;
}

}  // namespace vidfuse
