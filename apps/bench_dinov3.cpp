// `vidfuse bench dinov3 [--json]`: DINOv3 images/s at the real shape, against the GEMM ceiling
// measured in the same run.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "dtype_option.h"
#include "profile_option.h"
#include "vidfuse/core/cpu_peak.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/gemm_ceiling.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/models/dinov3.h"

namespace vidfuse::cli {
namespace {

struct Dinov3BenchArgs {
  std::string variant = "vitb16", dtype = "both", device = "auto", weights, profile;
  int64_t batch = 8, size = 224, iters = 3;
  bool json = false, ab = false;
};

// Forward FLOPs per image: every matmul (2 per multiply-add) and the patch embedding.
double dinov3_gflop_per_image(const models::DinoV3Config& c, int64_t size) {
  const double p = (size / c.patch_size) * (size / c.patch_size);
  const double n = 1 + c.num_register_tokens + p, d = c.hidden_size, m = c.intermediate_size;
  const double mlp = (c.use_gated_mlp ? 3 : 2) * n * d * m;
  const double per_layer = 4 * n * d * d + 2 * n * n * d + mlp;
  const double patch = p * d * c.num_channels * c.patch_size * c.patch_size;
  return 2 * (c.num_hidden_layers * per_layer + patch) / 1e9;
}

// `--ab`: the fused path on each kernel set (VIDFUSE_DINOV3_KERNELS=torch, then onednn), two models
// of the same weights, timed alternately in one process so that a busy machine's noise falls on
// both alike.
int run_dinov3_ab(const Dinov3BenchArgs& a) {
  std::vector<std::string> dtypes = a.dtype == "both" ? std::vector<std::string>{"fp32", "bf16"}
                                                      : std::vector<std::string>{a.dtype};
  const std::vector<std::string> sets = {"torch", "onednn"};
  for (const auto& name : dtypes) {
    const torch::ScalarType dtype = parse_compute_dtype(name, a.device);
    const torch::Device device(a.device);
    std::vector<models::DinoV3ViT> models;
    for (const auto& set : sets) {
      torch::manual_seed(0);
      models::DinoV3ViT m(models::DinoV3Config::preset(a.variant));
      m->to(device, dtype);
      m->eval();
      ::setenv("VIDFUSE_DINOV3_KERNELS", set.c_str(), 1);
      m->fuse_for_inference();
      models.push_back(m);
    }
    ::unsetenv("VIDFUSE_DINOV3_KERNELS");
    torch::Tensor x = torch::randn({a.batch, 3, a.size, a.size}).to(device, dtype);
    torch::InferenceMode guard;
    const torch::Tensor ref = models[0]->forward(x).pooler_output.to(torch::kFloat32);
    const torch::Tensor other = models[1]->forward(x).pooler_output.to(torch::kFloat32);
    const double diff = ((other - ref).norm() / ref.norm()).item<double>();
    std::vector<std::vector<double>> times(sets.size());
    for (int64_t i = 0; i < a.iters; ++i)
      for (size_t s = 0; s < sets.size(); ++s) {
        const auto t0 = std::chrono::steady_clock::now();
        models[s]->forward(x).pooler_output.sum().item<double>();
        times[s].push_back(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
      }
    const double gflop = dinov3_gflop_per_image(models[0]->config(), a.size);
    std::vector<double> best, median;
    for (auto& t : times) {
      std::sort(t.begin(), t.end());
      best.push_back(a.batch / t.front());
      median.push_back(a.batch / t[t.size() / 2]);
    }
    nlohmann::json r = {{"bench", "dinov3-ab"},
                        {"dtype", name},
                        {"batch", a.batch},
                        {"size", a.size},
                        {"threads", torch::get_num_threads()},
                        {"torch_images_per_s", best[0]},
                        {"onednn_images_per_s", best[1]},
                        {"torch_images_per_s_median", median[0]},
                        {"onednn_images_per_s_median", median[1]},
                        {"onednn_over_torch", best[1] / best[0]},
                        {"onednn_over_torch_median", median[1] / median[0]},
                        {"rel_diff", diff},
                        {"onednn", onednn::version()},
                        {"cpu_isa", cpu_isa()}};
    if (a.json)
      std::cout << r.dump() << std::endl;
    else
      std::printf(
          "dinov3 %s A/B, %d threads, %ld alternated forwards each: torch %.2f img/s (median "
          "%.2f, %.1f GFLOP/s), onednn %.2f (median %.2f, %.1f GFLOP/s): onednn/torch %.3f "
          "(median %.3f); outputs differ by %.1e\n",
          name.c_str(), torch::get_num_threads(), (long)a.iters, best[0], median[0],
          best[0] * gflop, best[1], median[1], best[1] * gflop, best[1] / best[0],
          median[1] / median[0], diff);
  }
  return 0;
}

int run_dinov3_bench(Dinov3BenchArgs a) {
  a.device = announce_device(a.device, "bench dinov3");
  if (a.ab) return run_dinov3_ab(a);
  std::vector<std::string> dtypes = a.dtype == "both" ? std::vector<std::string>{"fp32", "bf16"}
                                                      : std::vector<std::string>{a.dtype};
  for (const auto& name : dtypes) {
    const torch::ScalarType dtype = parse_compute_dtype(name, a.device);
    torch::manual_seed(0);
    models::DinoV3ViT model = a.weights.empty()
                                  ? models::DinoV3ViT(models::DinoV3Config::preset(a.variant))
                                  : models::load_dinov3(a.weights, dtype);
    // The figure the issue and the literature quote (35.9 for ViT-B/16 at 224) next to our count.
    const double gflop = dinov3_gflop_per_image(model->config(), a.size);
    const torch::Device device(a.device);
    model->to(device, dtype);
    model->eval();
    model->fuse_for_inference();
    torch::Tensor x = torch::randn({a.batch, 3, a.size, a.size}).to(device, dtype);
    torch::InferenceMode guard;
    // Reading one element waits for an asynchronous device to finish.
    auto forward = [&] { model->forward(x).pooler_output.sum().item<double>(); };
    forward();  // warm-up: oneDNN primitive creation, allocator
    profile_once(profile_path_for(a.profile, name, dtypes.size() > 1), forward);
    std::vector<double> times;
    for (int64_t i = 0; i < a.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      forward();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double best = times.front(), median = times[times.size() / 2];
    const double images_per_s = a.batch / best;
    const double model_gflops = images_per_s * gflop;
    const double gemm = measure_gemm_gflops(dtype, device);
    // The rate the model's linear layers actually get (oneDNN on the CPU): the tighter ceiling.
    const double linear = measure_linear_gflops(dtype, device);
    // The CPU's own peak (its measured clock times its widest FMA's measured rate): how much of
    // the machine the GEMMs and the model reach, not only how they compare with each other.
    const CpuPeak peak =
        device.is_cpu() ? measure_cpu_peak(name, torch::get_num_threads()) : CpuPeak{};
    auto of_peak = [&](double gflops) -> nlohmann::json {
      if (peak.gflops <= 0) return nullptr;
      return gflops / peak.gflops;
    };
    nlohmann::json r = {{"bench", "dinov3"},
                        {"variant", a.weights.empty() ? a.variant : a.weights},
                        {"device", a.device},
                        {"dtype", name},
                        {"kernels", models::dinov3_kernels_name(model->kernels())},
                        {"onednn", onednn::version()},
                        {"batch", a.batch},
                        {"size", a.size},
                        {"threads", torch::get_num_threads()},
                        {"parallel_for_threads", parallel_for_threads()},
                        {"images_per_s", images_per_s},
                        {"seconds_per_batch", best},
                        {"seconds_per_batch_median", median},
                        {"images_per_s_median", a.batch / median},
                        {"gflop_per_image", gflop},
                        {"model_gflops", model_gflops},
                        {"gemm_gflops", gemm},
                        {"ratio_to_gemm", model_gflops / gemm},
                        {"linear_gflops", linear},
                        {"ratio_to_linear", model_gflops / linear},
                        {"cpu_peak",
                         {{"instruction", peak.instruction},
                          {"clock_ghz", peak.clock_ghz},
                          {"gflops", peak.gflops},
                          {"flop_per_cycle_per_core", peak.flop_per_cycle}}},
                        {"model_of_peak", of_peak(model_gflops)},
                        {"gemm_of_peak", of_peak(gemm)},
                        {"linear_of_peak", of_peak(linear)},
                        {"peak_rss_gb", peak_rss_gb()},
                        {"blas", loaded_blas_library()},
                        {"cpu_isa", cpu_isa()},
                        {"libtorch", TORCH_VERSION}};
    if (a.json) {
      std::cout << r.dump() << std::endl;
    } else {
      std::printf(
          "dinov3 %s %s (%s kernels) batch %ld @%ld: %.2f img/s (median %.2f), %.1f GFLOP/s model "
          "vs %.1f GFLOP/s GEMM (ratio %.2f) and %.1f GFLOP/s oneDNN linear (ratio %.2f), peak "
          "RSS %.2f GB\n",
          (a.weights.empty() ? a.variant : a.weights).c_str(), name.c_str(),
          models::dinov3_kernels_name(model->kernels()), (long)a.batch, (long)a.size, images_per_s,
          a.batch / median, model_gflops, gemm, model_gflops / gemm, linear, model_gflops / linear,
          peak_rss_gb());
      if (peak.gflops > 0)
        std::printf(
            "  CPU peak %.1f GFLOP/s (%s, %.1f FLOP/cycle/core at %.2f GHz measured, %d threads): "
            "model %.0f %%, GEMM %.0f %%, oneDNN linear %.0f %% of it\n",
            peak.gflops, peak.instruction.c_str(), peak.flop_per_cycle, peak.clock_ghz,
            peak.threads, 100 * model_gflops / peak.gflops, 100 * gemm / peak.gflops,
            100 * linear / peak.gflops);
    }
  }
  return 0;
}

VIDFUSE_BENCH(
    "dinov3",
    "DINOv3 images/s (random weights of the real shape, or --weights) vs the GEMM ceiling",
    [](CLI::App& sub) {
      auto a = std::make_shared<Dinov3BenchArgs>();
      sub.add_flag("--json", a->json, "One JSON object per line");
      sub.add_flag("--ab", a->ab,
                   "Both kernel sets (torch, onednn) timed alternately in one process; random "
                   "weights");
      sub.add_option("--variant", a->variant, "vits16|vitb16|vitl16|...")->capture_default_str();
      sub.add_option("--weights", a->weights,
                     "A DINOv3 checkpoint or HF directory instead of random weights (the same "
                     "weights a peer runs)");
      sub.add_option("--dtype", a->dtype, "fp32, bf16 or both")->capture_default_str();
      sub.add_option("--batch", a->batch)->capture_default_str();
      sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          ->capture_default_str();
      sub.add_option("--size", a->size, "Square input size")->capture_default_str();
      sub.add_option("--iters", a->iters, "Timed iterations (best is reported)")
          ->capture_default_str();
      sub.add_option("--profile", a->profile,
                     "Also write one forward's Chrome trace here (-fp32/-bf16 added for both)");
      return [a] { return run_dinov3_bench(*a); };
    });

}  // namespace
}  // namespace vidfuse::cli
