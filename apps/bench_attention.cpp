// `vidfuse bench attention [--json]`: the two attention kernels (LibTorch's fused SDPA and the
// per-head path) at the shapes the models run, forward and forward+backward, fp32 and bf16. This
// is the measurement behind models/attention.cpp's choice of kernel.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/models/attention.h"

namespace vidfuse::cli {
namespace {

struct Shape {
  const char* name;
  int64_t batch, heads, queries, keys, dim;
};

// DINOv3 ViT-B/16 at 224² (1 CLS + 4 registers + 196 patches), batch 8; the fusion model's
// default config on SSv2-shaped features at batch 32: semantic tokens (16 frames of 7x7 pooled
// patches + 16 CLS) attending to motion tokens (8x7x7) and back, and the 4 pooling queries.
constexpr Shape kShapes[] = {{"dinov3-vitb16", 8, 12, 201, 201, 64},
                             {"fusion-sem-to-mot", 32, 8, 800, 392, 64},
                             {"fusion-mot-to-sem", 32, 8, 392, 800, 64},
                             {"fusion-pool", 32, 8, 4, 800, 64}};

struct AttentionBenchArgs {
  std::string dtype = "both", device = "auto", shape;
  int64_t iters = 5;
  bool json = false;
};

double best_seconds(int64_t iters, const std::function<void()>& step) {
  step();  // warm-up
  double best = 1e30;
  for (int64_t i = 0; i < iters; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

int run_attention_bench(AttentionBenchArgs a) {
  a.device = announce_device(a.device, "bench attention");
  warn_if_bf16_is_emulated(a.dtype != "fp32", a.device);
  const torch::Device device(a.device);
  std::vector<std::pair<std::string, torch::ScalarType>> dtypes;
  if (a.dtype == "fp32" || a.dtype == "both") dtypes.emplace_back("fp32", torch::kFloat32);
  if (a.dtype == "bf16" || a.dtype == "both") dtypes.emplace_back("bf16", torch::kBFloat16);
  const models::AttentionKernel before = models::attention_kernel();
  for (const Shape& s : kShapes) {
    if (!a.shape.empty() && a.shape != s.name) continue;
    for (const auto& [dtype_name, dtype] : dtypes) {
      torch::manual_seed(0);
      auto make = [&](int64_t n) {
        return torch::randn({s.batch, s.heads, n, s.dim}).to(device, dtype).requires_grad_(true);
      };
      auto q = make(s.queries), k = make(s.keys), v = make(s.keys);
      const double scale = 1.0 / std::sqrt(static_cast<double>(s.dim));
      // 2 products of Nq x Nk x D per head forward, 4 more backward.
      const double gflop = 2.0 * 2 * s.batch * s.heads * s.queries * s.keys * s.dim / 1e9;
      nlohmann::json row = {{"bench", "attention"},
                            {"shape", s.name},
                            {"dtype", dtype_name},
                            {"device", a.device},
                            {"threads", torch::get_num_threads()},
                            {"cpu_isa", cpu_isa()},
                            {"libtorch", TORCH_VERSION}};
      for (const auto& [kernel_name, kernel] :
           {std::pair{"sdpa", models::AttentionKernel::Sdpa},
            std::pair{"per_head", models::AttentionKernel::PerHead}}) {
        models::set_attention_kernel(kernel);
        const double fwd = best_seconds(a.iters, [&] {
          torch::InferenceMode guard;
          models::attention(q, k, v, scale).sum().item<double>();  // the read waits for a GPU
        });
        const double train = best_seconds(a.iters, [&] {
          auto out = models::attention(q, k, v, scale);
          out.sum().backward();
          q.grad().sum().item<double>();
          q.mutable_grad().reset();
          k.mutable_grad().reset();
          v.mutable_grad().reset();
        });
        row[std::string(kernel_name) + "_forward_ms"] = fwd * 1e3;
        row[std::string(kernel_name) + "_train_ms"] = train * 1e3;
        row[std::string(kernel_name) + "_forward_gflops"] = gflop / fwd;
      }
      models::set_attention_kernel(before);
      if (a.json) {
        std::cout << row.dump() << std::endl;
      } else {
        std::printf(
            "attention %-18s %s: forward sdpa %.2f ms, per-head %.2f ms; fwd+bwd sdpa %.2f ms, "
            "per-head %.2f ms\n",
            s.name, dtype_name.c_str(), row["sdpa_forward_ms"].get<double>(),
            row["per_head_forward_ms"].get<double>(), row["sdpa_train_ms"].get<double>(),
            row["per_head_train_ms"].get<double>());
      }
    }
  }
  return 0;
}

VIDFUSE_BENCH("attention", "SDPA vs the per-head attention kernel at the models' shapes",
              [](CLI::App& sub) {
                auto a = std::make_shared<AttentionBenchArgs>();
                sub.add_flag("--json", a->json, "One JSON object per line");
                sub.add_option("--dtype", a->dtype, "fp32, bf16 or both")->capture_default_str();
                sub.add_option("--device", a->device,
                               "auto (a GPU when there is one), cpu, cuda, cuda:N")
                    ->capture_default_str();
                sub.add_option("--shape", a->shape,
                               "Only this shape (dinov3-vitb16, fusion-sem-to-mot, "
                               "fusion-mot-to-sem, fusion-pool)");
                sub.add_option("--iters", a->iters, "Timed iterations (best is reported)")
                    ->capture_default_str();
                return [a] { return run_attention_bench(*a); };
              });

}  // namespace
}  // namespace vidfuse::cli
