// The CPU's arithmetic peak, measured: the clock the cores run at under load and the
// multiply-add rate of the widest FMA instruction this CPU has, so that a benchmark can say what
// fraction of the peak its GEMMs and its model reach (the cpuinfo clock is the base clock, not
// the boost clock the cores run at, and the FMA width per cycle differs between CPUs of one ISA:
// Zen 4 runs AVX-512 on two 256-bit pipes, Intel server cores on two 512-bit ones).
#pragma once
#include <string>

namespace vidfuse {

struct CpuPeak {
  std::string instruction;    // what was timed, e.g. "vfmadd231ps zmm", "vdpbf16ps zmm"; "" = none
  double clock_ghz = 0;       // dependent integer adds per second and core (1 per cycle), in GHz
  double gflops = 0;          // FLOP/s of independent FMAs on `threads` threads at once, in GFLOP/s
  double flop_per_cycle = 0;  // per core: gflops / (clock_ghz * threads)
  int threads = 0;
};

// Times the FMA loop for `dtype` ("fp32", or "bf16": the bf16 dot-product instruction, where the
// CPU has one) on `threads` threads at once, ~0.2 s, best of three. A CPU without AVX2 + FMA (or
// without AVX512-BF16 for "bf16") gives an empty `instruction` and zeros.
CpuPeak measure_cpu_peak(const std::string& dtype, int threads);

}  // namespace vidfuse
