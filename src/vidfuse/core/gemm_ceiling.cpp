#include "vidfuse/core/gemm_ceiling.h"

#include <algorithm>
#include <chrono>
#include <functional>

#include "vidfuse/core/linear.h"

namespace vidfuse {

namespace {

// Best GFLOP/s of `product` (an n x n x n matrix product returning its result), timed for at
// least `min_seconds` after a warm-up (allocations, kernel selection, weight packing).
double best_gflops(const std::function<torch::Tensor()>& product, torch::Device device, int64_t n,
                   double min_seconds) {
  torch::Tensor c = product();
  auto sync = [&] {
    // An element read waits for asynchronous devices to finish the product.
    if (!device.is_cpu()) c.sum().item<double>();
  };
  sync();
  const double flops = 2.0 * static_cast<double>(n) * n * n;
  double best = 0, total = 0;
  // The best single product: the figure least disturbed by other work on the machine.
  while (total < min_seconds) {
    const auto start = std::chrono::steady_clock::now();
    c = product();
    sync();
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    total += s;
    best = std::max(best, flops / s / 1e9);
  }
  return best;
}

}  // namespace

double measure_gemm_gflops(torch::ScalarType dtype, torch::Device device, int64_t n,
                           double min_seconds) {
  torch::InferenceMode guard;
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  const torch::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  return best_gflops([&] { return torch::mm(a, b); }, device, n, min_seconds);
}

double measure_linear_gflops(torch::ScalarType dtype, torch::Device device, int64_t n,
                             double min_seconds) {
  torch::InferenceMode guard;
  const auto options = torch::TensorOptions().dtype(dtype).device(device);
  const torch::Tensor a = torch::randn({n, n}, options);
  const PackedLinear linear(torch::randn({n, n}, options), torch::Tensor());
  return best_gflops([&] { return linear(a); }, device, n, min_seconds);
}

}  // namespace vidfuse
