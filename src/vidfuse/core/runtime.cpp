#include "vidfuse/core/runtime.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/cpu/Utils.h>
#include <malloc.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

namespace vidfuse {

std::string loaded_blas_library() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (path.find("blas") != std::string::npos || path.find("mkl") != std::string::npos)
      return path;
  }
  return "";
}

bool blas_is_fast() {
  // The torch wheel links MKL statically: nothing to see in the process maps, but ATen knows.
  if (at::hasMKL()) return true;
  const std::string lib = loaded_blas_library();
  for (const char* fast : {"openblas", "mkl", "blis"})
    if (lib.find(fast) != std::string::npos) return true;
  return false;
}

int parallel_for_threads() {
  const int64_t n = at::get_num_threads();
  std::mutex mutex;
  std::set<int> seen;
  at::parallel_for(0, n, 1, [&](int64_t, int64_t) {
    std::lock_guard<std::mutex> lock(mutex);
    seen.insert(at::get_thread_num());
  });
  return static_cast<int>(seen.size());
}

namespace {

bool cpu_has(const char* feature) {
  static const auto caps = at::cpu::get_cpu_capabilities();
  const auto it = caps.find(feature);
  return it != caps.end() && it->second.isBool() && it->second.toBool();
}

}  // namespace

void set_tf32(bool allow) {
  at::globalContext().setAllowTF32CuBLAS(allow);
  at::globalContext().setAllowTF32CuDNN(allow);
}

std::string device_for_rank(const std::string& device, int local_rank) {
  if (device != "cuda") return device;
  const int visible = static_cast<int>(torch::cuda::device_count());
  return "cuda:" + std::to_string(visible > 0 ? local_rank % visible : local_rank);
}

std::string cpu_isa() {
  const bool bf16 = cpu_has("avx512_bf16"), amx = cpu_has("amx_bf16");
  if (bf16 && amx) return "avx512-bf16+amx";
  if (bf16) return "avx512-bf16";
  if (cpu_has("avx512_f") && cpu_has("avx512_bw")) return "avx512";
  if (cpu_has("avx2") && cpu_has("fma3")) return "avx2";
  return "baseline";
}

bool cpu_has_amx() { return cpu_has("amx_bf16"); }

bool cpu_is_intel() {
  // Read once: under a hypervisor each cpuid traps, and the linear layers ask on every call.
  static const bool intel = [] {
#if defined(__x86_64__) || defined(__i386__)
    unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
    if (!__get_cpuid(0, &eax, &ebx, &ecx, &edx)) return false;
    char vendor[13] = {};
    std::memcpy(vendor, &ebx, 4);  // the vendor string is ebx, edx, ecx
    std::memcpy(vendor + 4, &edx, 4);
    std::memcpy(vendor + 8, &ecx, 4);
    return std::strcmp(vendor, "GenuineIntel") == 0;
#else
    return false;
#endif
  }();
  return intel;
}

bool cpu_has_native_bf16() {
  if (const char* forced = std::getenv("VIDFUSE_CPU_BF16"); forced && *forced)
    return std::string(forced) != "0";
  return cpu_has("avx512_bf16") || cpu_has("amx_bf16");
}

std::string bf16_compute_warning(const std::string& device) {
  if (device.rfind("cpu", 0) != 0 || cpu_has_native_bf16()) return "";
  return "vidfuse: warning: bf16 was asked for, but this CPU (" + cpu_isa() +
         ") has no native bf16 (AVX512-BF16 or AMX): LibTorch emulates it, about 90x slower than "
         "fp32 for ViT-B/16. Use --dtype fp32 (or --compute fp32) here; bf16 pays off on CPUs with "
         "AVX512-BF16 (Zen 4, Sapphire Rapids) and on GPUs.";
}

void warn_if_bf16_is_emulated(bool bf16, const std::string& device) {
  static std::once_flag once;
  if (!bf16) return;
  const std::string warning = bf16_compute_warning(device);
  if (!warning.empty()) std::call_once(once, [&] { std::cerr << warning << "\n"; });
}

void configure_runtime(int threads) {
  // Keep freed activation buffers in the heap instead of returning them to the kernel: glibc
  // otherwise mmaps every large tensor afresh and page-faults through it on each forward. The
  // threshold caps at 32 MB, and I3D's activations are larger (its first block's output is 100 MB
  // per clip), so mmap is turned off altogether: an I3D forward page-faulted through 330 MB and ran
  // at half speed (1.67 s vs 0.71 s per 64-frame clip on a 2-core VM). Large blocks now come from
  // the heap and are reused; glibc still falls back to mmap if the heap cannot grow.
  static bool heap_tuned = false;
  if (!heap_tuned) {
    heap_tuned = true;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // the largest value glibc accepts
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  // LibTorch's default can be 1 on small VMs; use every core unless told otherwise.
  // OMP_NUM_THREADS is how launchers (torchrun, `vidfuse train --nproc`) give each rank its share.
  if (threads <= 0) {
    if (const char* omp = std::getenv("OMP_NUM_THREADS")) threads = std::atoi(omp);
  }
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  torch::set_num_threads(threads);
  const char* tf32 = std::getenv("VIDFUSE_TF32");
  set_tf32(tf32 && std::string(tf32) == "1");
  static bool warned = false;
  if (!warned && !blas_is_fast()) {
    warned = true;
    const std::string lib = loaded_blas_library();
    std::cerr << "vidfuse: warning: BLAS is " << (lib.empty() ? "not loaded" : lib)
              << " (not OpenBLAS/MKL): matrix products may be ~30x slower. "
                 "Install libopenblas0-openmp.\n";
  }
}

double peak_rss_gb() {
  struct rusage u {};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss / 1024.0 / 1024.0;  // ru_maxrss is in KiB on Linux
}

}  // namespace vidfuse
