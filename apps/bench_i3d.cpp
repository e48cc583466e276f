// `vidfuse bench i3d`: seconds per clip of the I3D RGB backbone + head (random weights of the real
// shape, 400 classes) on [B, 3, T, 224, 224] clips, the GFLOP/s that implies, and the GEMM rate of
// the same dtype measured in the same run as the ceiling.
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "profile_option.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/gemm_ceiling.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/models/i3d.h"

namespace vidfuse::cli {
namespace {

struct BenchOptions {
  bool json = false;
  int64_t frames = 64, batch = 1, size = 224;
  std::string dtype = "both", device = "auto", weights, profile;
  int iters = 3;
};

// `profile_path`: where to write one forward's trace ("" for none).
nlohmann::json bench_dtype(const BenchOptions& o, torch::ScalarType dtype, const std::string& name,
                           const std::string& profile_path) {
  torch::manual_seed(0);
  // Random weights of the Kinetics RGB model (3 channels, 400 classes) unless a checkpoint is
  // given.
  models::InceptionI3d model =
      o.weights.empty() ? models::InceptionI3d(models::I3DConfig{}) : models::load_i3d(o.weights);
  const models::I3DConfig config = model->config();
  const torch::Device device(o.device);
  model->to(device);
  model->eval();
  model->fuse_for_inference(dtype);
  const torch::Tensor clip =
      (torch::rand({o.batch, 3, o.frames, o.size, o.size}) * 2 - 1).to(device);

  torch::InferenceMode guard;
  auto run = [&] {
    const auto start = std::chrono::steady_clock::now();
    model->forward(clip).logits.sum().item<double>();  // the read waits for a GPU
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  run();  // warm-up: oneDNN primitive creation, allocator
  profile_once(profile_path, [&] { run(); });
  std::vector<double> times;
  for (int i = 0; i < o.iters; ++i) times.push_back(run() / o.batch);
  std::sort(times.begin(), times.end());
  const double median = times[times.size() / 2], best = times.front();
  const double gflop = models::i3d_flops(config, o.frames, o.size, o.size) / 1e9;
  const double gemm = measure_gemm_gflops(dtype, device);
  // oneDNN's rate on the same product: the convolutions run on oneDNN, so this is the tighter
  // ceiling where it beats the BLAS.
  const double linear = measure_linear_gflops(dtype, device);
  return {{"bench", "i3d"},
          {"cpu_isa", cpu_isa()},
          {"libtorch", TORCH_VERSION},
          {"dtype", name},
          {"device", o.device},
          {"batch", o.batch},
          {"frames", o.frames},
          {"size", o.size},
          {"iters", o.iters},
          {"threads", at::get_num_threads()},
          {"parallel_for_threads", parallel_for_threads()},
          {"s_per_clip", median},
          {"s_per_clip_best", best},
          {"gflop_per_clip", gflop},
          {"gflops", gflop / median},
          {"gemm_gflops", gemm},
          {"ratio_to_gemm", gflop / median / gemm},
          {"linear_gflops", linear},
          {"ratio_to_linear", gflop / median / linear}};
}

int run_i3d_bench(BenchOptions o) {
  o.device = announce_device(o.device, "bench i3d");
  if (o.frames < models::kI3DMinFrames || o.size < models::kI3DMinSize || o.batch < 1 ||
      o.iters < 1)
    throw Error("bench i3d: needs --frames >= 9, --size >= 193, --batch >= 1, --iters >= 1");
  std::vector<std::pair<std::string, torch::ScalarType>> dtypes;
  if (o.dtype == "fp32" || o.dtype == "both") dtypes.emplace_back("fp32", torch::kFloat32);
  if (o.dtype == "bf16" || o.dtype == "both") dtypes.emplace_back("bf16", torch::kBFloat16);
  for (const auto& [name, dtype] : dtypes) {
    const nlohmann::json r =
        bench_dtype(o, dtype, name, profile_path_for(o.profile, name, dtypes.size() > 1));
    if (o.json) {
      std::cout << r.dump() << std::endl;
    } else {
      std::cout << "i3d " << name << " [" << o.batch << ",3," << o.frames << "," << o.size << ","
                << o.size << "], " << r["threads"] << " threads: " << r["s_per_clip"].get<double>()
                << " s/clip (best " << r["s_per_clip_best"].get<double>() << "), "
                << r["gflop_per_clip"].get<double>() << " GFLOP/clip -> "
                << r["gflops"].get<double>() << " GFLOP/s; GEMM ceiling "
                << r["gemm_gflops"].get<double>() << " GFLOP/s; ratio "
                << r["ratio_to_gemm"].get<double>() << "; oneDNN ceiling "
                << r["linear_gflops"].get<double>() << " GFLOP/s; ratio "
                << r["ratio_to_linear"].get<double>() << std::endl;
    }
  }
  return 0;
}

VIDFUSE_BENCH("i3d", "I3D seconds per 64x224x224 clip vs the GEMM ceiling", [](CLI::App& sub) {
  auto o = std::make_shared<BenchOptions>();
  sub.add_flag("--json", o->json, "One JSON object per line");
  sub.add_option("--frames", o->frames, "Frames per clip")->capture_default_str();
  sub.add_option("--batch", o->batch, "Clips per forward")->capture_default_str();
  sub.add_option("--size", o->size, "Frame height and width")->capture_default_str();
  sub.add_option("--dtype", o->dtype, "Compute dtype")
      ->check(CLI::IsMember({"fp32", "bf16", "both"}))
      ->capture_default_str();
  sub.add_option("--iters", o->iters, "Timed forwards (after one warm-up)")->capture_default_str();
  sub.add_option("--device", o->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
      ->capture_default_str();
  sub.add_option("--weights", o->weights,
                 "An I3D checkpoint instead of random weights (the same weights a peer runs)");
  sub.add_option("--profile", o->profile,
                 "Also write one forward's Chrome trace here (-fp32/-bf16 added for both)");
  return [o] { return run_i3d_bench(*o); };
});

}  // namespace
}  // namespace vidfuse::cli
