// `vidfuse bench fusion [--json]`: training throughput of the fusion classifier on cached features
// of SSv2 shape (16×14×14 DINOv3 ViT-B tokens + 16 CLS of 768, 8×7×7 I3D Mixed_5c tokens of 1024,
// 174 classes) through the real Trainer, its analytic FLOPs per sample next to the backbones', the
// GEMM rate of the same dtype measured in the same run as the ceiling, and what one SSv2 epoch
// would take at the measured rate.

#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "profile_option.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/gemm_ceiling.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/data/dataset.h"
#include "vidfuse/models/fusion.h"
#include "vidfuse/train/metrics.h"
#include "vidfuse/train/trainer.h"

namespace vidfuse::cli {
namespace {

// Backbone costs per video (reference notes): DINOv3 ViT-B/16 at 224² per frame, and I3D on a
// 64-frame 224² clip.
constexpr double kDinoGflopPerFrame = 35.9;
constexpr double kI3dGflopPerClip = 222.0;
constexpr int64_t kSsv2TrainVideos = 168913;

struct FusionBenchArgs {
  std::string precision = "fp32", config, device = "auto", profile;
  int64_t batch = 32, iters = 3, frames = 16;
  bool json = false;
};

int run_fusion_bench(FusionBenchArgs a) {
  a.device = announce_device(a.device, "bench fusion");
  if (a.batch < 1 || a.iters < 1) throw Error("bench fusion: --batch and --iters must be >= 1");
  std::vector<std::string> precisions = a.precision == "both"
                                            ? std::vector<std::string>{"fp32", "bf16"}
                                            : std::vector<std::string>{a.precision};
  train::TrainConfig tc;
  if (!a.config.empty()) tc.model = train::load_train_config(a.config).model;
  const auto& mc = tc.model;
  const std::array<int64_t, 3> sg{a.frames, mc.semantic_grid[1], mc.semantic_grid[2]};
  const auto mg = mc.motion_grid;
  const auto cost = models::fusion_forward_cost(mc, sg, mg, /*with_cls=*/true);
  const double fwd_gflop = cost.flops / 1e9;
  const double backbone_gflop = kDinoGflopPerFrame * a.frames + kI3dGflopPerClip;

  // One batch of random features, repeated: the trainer collates it every step as it would
  // samples read from the feature store (the store's disk reads are not part of this figure).
  torch::manual_seed(0);
  const int64_t n = a.batch;
  auto data = std::make_shared<data::TensorDataset>(
      torch::randn({n, sg[0], sg[1], sg[2], mc.semantic_dim}),
      mc.use_cls ? torch::randn({n, sg[0], mc.semantic_dim}) : torch::Tensor(),
      torch::randn({n, mc.motion_dim, mg[0], mg[1], mg[2]}),
      torch::randint(0, mc.num_classes, {n}, torch::kLong));

  for (const auto& precision : precisions) {
    tc.precision = precision;
    tc.device = a.device;
    tc.batch_size = a.batch;
    tc.max_steps = 1 + a.iters;  // the first step warms up allocator and kernels
    tc.log_every = 1;
    tc.warmup_steps = 0;
    tc.validate("bench fusion");
    train::Trainer trainer(tc, data);
    std::vector<double> step_seconds;
    trainer.set_log_callback([&](const nlohmann::json& r) {
      if (r["type"] == "train") step_seconds.push_back(a.batch / r["samples_per_s"].get<double>());
    });
    trainer.fit();
    const double best = *std::min_element(step_seconds.begin() + 1, step_seconds.end());
    const double train_sps = a.batch / best;

    // Inference (eval / predict) throughput on the same batch.
    train::EvalOptions eo;
    eo.batch_size = a.batch;
    train::evaluate(trainer.model(), *data, eo);
    profile_once(profile_path_for(a.profile, precision, precisions.size() > 1),
                 [&] { train::evaluate(trainer.model(), *data, eo); });
    double eval_best = 1e30;
    for (int64_t i = 0; i < a.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      train::evaluate(trainer.model(), *data, eo);
      eval_best = std::min(
          eval_best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    const double eval_sps = a.batch / eval_best;

    const double train_gflops = 3 * fwd_gflop * train_sps;  // backward ≈ 2× forward
    const double gemm = measure_gemm_gflops(
        precision == "bf16" ? torch::kBFloat16 : torch::kFloat32, torch::Device(a.device));
    const double epoch_s = kSsv2TrainVideos / train_sps;
    int64_t params = 0;
    for (const auto& p : trainer.model()->parameters()) params += p.numel();
    nlohmann::json r = {{"bench", "fusion"},
                        {"precision", precision},
                        {"device", a.device},
                        {"batch", a.batch},
                        {"threads", torch::get_num_threads()},
                        {"parallel_for_threads", parallel_for_threads()},
                        {"semantic_tokens_in", sg[0] * sg[1] * sg[2]},
                        {"semantic_tokens_fused", cost.semantic_tokens},
                        {"motion_tokens", cost.motion_tokens},
                        {"params", params},
                        {"train_samples_per_s", train_sps},
                        {"seconds_per_step", best},
                        {"eval_samples_per_s", eval_sps},
                        {"fusion_gflop_per_sample_fwd", fwd_gflop},
                        {"fusion_gflop_per_sample_train", 3 * fwd_gflop},
                        {"backbone_gflop_per_video", backbone_gflop},
                        {"fusion_fraction_of_backbones", fwd_gflop / backbone_gflop},
                        {"train_gflops", train_gflops},
                        {"gemm_gflops", gemm},
                        {"ratio_to_gemm", train_gflops / gemm},
                        {"ssv2_train_videos", kSsv2TrainVideos},
                        {"ssv2_epoch_hours", epoch_s / 3600},
                        {"peak_rss_gb", peak_rss_gb()},
                        {"blas", loaded_blas_library()},
                        {"cpu_isa", cpu_isa()},
                        {"libtorch", TORCH_VERSION},
                        {"model", models::to_json(mc)}};
    if (a.json) {
      std::cout << r.dump() << std::endl;
    } else {
      std::printf(
          "fusion %s batch %ld: train %.2f samples/s (%.2f s/step), eval %.1f samples/s\n"
          "  FLOPs/sample: fusion %.2f GFLOP forward (%.2f train) vs backbones %.1f GFLOP "
          "(DINOv3 %.1f x %ld + I3D %.0f): %.2f%%\n"
          "  achieved %.1f GFLOP/s vs GEMM %.1f GFLOP/s (ratio %.2f); peak RSS %.2f GB\n"
          "  one SSv2 train epoch (%ld videos) from cached features: %.2f h\n",
          precision.c_str(), (long)a.batch, train_sps, best, eval_sps, fwd_gflop, 3 * fwd_gflop,
          backbone_gflop, kDinoGflopPerFrame, (long)a.frames, kI3dGflopPerClip,
          100 * fwd_gflop / backbone_gflop, train_gflops, gemm, train_gflops / gemm, peak_rss_gb(),
          (long)kSsv2TrainVideos, epoch_s / 3600);
    }
  }
  return 0;
}

VIDFUSE_BENCH(
    "fusion", "Fusion training samples/s on SSv2-shaped cached features, FLOPs vs the backbones",
    [](CLI::App& sub) {
      auto a = std::make_shared<FusionBenchArgs>();
      sub.add_flag("--json", a->json, "One JSON object per line");
      sub.add_option("--precision", a->precision, "fp32, bf16 or both")
          ->check(CLI::IsMember({"fp32", "bf16", "both"}))
          ->capture_default_str();
      sub.add_option("--batch", a->batch, "Global batch")->capture_default_str();
      sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          ->capture_default_str();
      sub.add_option("--iters", a->iters, "Timed steps (best is reported)")->capture_default_str();
      sub.add_option("--profile", a->profile,
                     "Also write one evaluation pass's Chrome trace here (-fp32/-bf16 added for "
                     "both)");
      sub.add_option("--frames", a->frames, "Semantic frames per video")->capture_default_str();
      sub.add_option("--config", a->config,
                     "Train config JSON whose \"model\" is benchmarked (default: the "
                     "default fusion config)");
      return [a] { return run_fusion_bench(*a); };
    });

}  // namespace
}  // namespace vidfuse::cli
