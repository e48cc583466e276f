#include "vidfuse/core/runtime.h"

#include <ATen/Parallel.h>
#include <malloc.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

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
  static bool warned = false;
  if (!warned && !blas_is_fast()) {
    warned = true;
    const std::string lib = loaded_blas_library();
    std::cerr << "vidfuse: warning: BLAS is " << (lib.empty() ? "not loaded" : lib)
              << " (not OpenBLAS/MKL): matrix products may be ~30x slower. "
                 "Install libopenblas0-openmp.\n";
  }
}

}  // namespace vidfuse
