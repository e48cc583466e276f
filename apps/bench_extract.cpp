// `vidfuse bench extract [--json] [--small]`: end-to-end extraction throughput (decode + sample +
// transform on loader threads, DINOv3 + I3D, fp16 store writes) on generated SSv2-like clips (VP9
// WebM, 427x240, 12 fps, 4 s), next to the model-only rate for exactly the same work (the same
// input shapes and batches, inputs already in memory) measured in the same run. The ratio is the
// share of the model-only rate the pipeline keeps: 1.0 means decoding is fully hidden. Random
// weights of the real shapes (ViT-B/16 + I3D; --small: ViT-S/16 at 112 px, 8 frames, and a
// 16-frame I3D clip at 193 px) — throughput does not depend on the weights.

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "command.h"
#include "dtype_option.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/io/video_writer.h"

namespace {

using namespace vidfuse;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct ExtractBenchArgs {
  bool json = false, small = false;
  int videos = 0;   // 0: 6 (small) / 4 (full)
  int workers = 0;  // 0: one per core
  std::string dtype = "fp32", dir, device = "auto";
  std::string dinov3_weights, i3d_weights;  // empty: random weights of the real shapes
};

// Moving textured content, so the VP9 stream costs what a real one does to decode.
void write_ssv2_like(const std::string& path) {
  io::VideoWriterOptions o;
  o.codec = "vp9";
  o.fps = 12;
  o.gop = 48;
  o.quality = 32;
  o.threads = 0;
  const int64_t h = 240, w = 427, n = 48;
  torch::manual_seed(0);
  const torch::Tensor noise = torch::randn({h, w + 64, 3}) * 12;
  io::VideoWriter writer(path, w, h, o);
  auto y = torch::arange(h, torch::kFloat32).view({h, 1});
  auto x = torch::arange(w, torch::kFloat32).view({1, w});
  for (int64_t t = 0; t < n; ++t) {
    const double ft = static_cast<double>(t);
    auto r = 128 + 90 * torch::sin(x / 23.0 + ft * 0.2) * torch::cos(y / 31.0);
    auto g = 128 + 90 * torch::sin(y / 17.0 - ft * 0.1 + x / 53.0);
    auto b = 128 + 90 * torch::sin((x + y) / 29.0 + ft * 0.05);
    auto img = torch::stack({r.expand({h, w}), g.expand({h, w}), b.expand({h, w})}, -1);
    const int64_t cx = (t * 6) % (w - 60);
    img.slice(0, 90, 150).slice(1, cx, cx + 60).fill_(30);  // an object crossing the frame
    img += noise.slice(1, t % 64, t % 64 + w);
    writer.write(img.clamp(0, 255).to(torch::kUInt8));
  }
  writer.close();
}

int run(ExtractBenchArgs a) {
  a.device = announce_device(a.device, "bench extract");
  const bool small = a.small;
  const int n_videos = a.videos > 0 ? a.videos : (small ? 6 : 4);
  const torch::ScalarType compute = cli::parse_compute_dtype(a.dtype, a.device);
  const torch::Device device(a.device);

  data::ExtractRecipe o;
  o.dinov3 = a.dinov3_weights.empty() ? "random" : a.dinov3_weights;
  o.i3d = a.i3d_weights.empty() ? "random" : a.i3d_weights;
  data::ExtractRun run;
  run.progress = data::ProgressMode::Off;
  run.workers = a.workers > 0 ? a.workers
                              : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  run.prefetch = 2 * run.workers;
  if (small) {
    o.semantic_sampling.num_segments = 8;
    o.semantic_size = 112;
    run.semantic_batch = 16;
    o.motion_clip = 16;
    o.motion_short_side = 193;
    o.motion_crop = 193;
  }
  const int64_t frames = o.semantic_sampling.num_segments;

  torch::manual_seed(0);
  data::ExtractModels m;
  m.dinov3 = a.dinov3_weights.empty()
                 ? models::DinoV3ViT(models::DinoV3Config::preset(small ? "vits16" : "vitb16"))
                 : models::load_dinov3(a.dinov3_weights, compute);
  m.dinov3->to(device, compute);
  m.dinov3->eval();
  m.dinov3->fuse_for_inference();
  m.i3d = a.i3d_weights.empty() ? models::InceptionI3d(models::I3DConfig{})
                                : models::load_i3d(a.i3d_weights);
  m.i3d->to(device);
  m.i3d->eval();
  m.i3d->fuse_for_inference(compute);

  // The clips: one encoded, copied under N names (decoding cost is per file read, not per name).
  bool remove_dir = a.dir.empty();
  std::string dir = a.dir;
  if (remove_dir) {
    std::string tmpl = (fs::temp_directory_path() / "vidfuse-bench-extract-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw Error("cannot create a temp dir");
    dir = tmpl;
  }
  fs::create_directories(dir);
  const std::string first = (fs::path(dir) / "clip_0.webm").string();
  if (!fs::exists(first)) write_ssv2_like(first);
  data::Manifest manifest;
  manifest.source = "bench";
  for (int i = 0; i < n_videos; ++i) {
    const std::string p = (fs::path(dir) / ("clip_" + std::to_string(i) + ".webm")).string();
    if (!fs::exists(p)) fs::copy_file(first, p);
    manifest.videos.push_back({"clip_" + std::to_string(i), p, -1});
  }

  // Model-only: the same shapes and batches, inputs already in memory.
  const torch::Tensor sem_in = torch::randn({frames, 3, o.semantic_size, o.semantic_size});
  const torch::Tensor mot_in =
      torch::rand({1, 3, o.motion_clip, o.motion_crop, o.motion_crop}) * 2 - 1;
  auto model_pass = [&](int videos) {
    torch::NoGradGuard no_grad;
    const torch::Tensor all = sem_in.repeat({videos, 1, 1, 1});
    for (int64_t s = 0; s < all.size(0); s += run.semantic_batch)
      data::semantic_forward(m.dinov3, all.slice(0, s, s + run.semantic_batch), o.pool);
    for (int v = 0; v < videos; ++v) {
      auto out = m.i3d->forward(mot_in.to(device));
      out.features.mean({2, 3, 4}).to(torch::kCPU);
    }
  };
  model_pass(1);  // warm-up (oneDNN primitives, allocator)
  auto time_models = [&] {
    const auto t0 = Clock::now();
    model_pass(n_videos);
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  // Model-only before and after the end-to-end run, averaged: on a shared machine the load drifts.
  const double model_s_before = time_models();

  run.store_dir = (fs::path(dir) / "store").string();
  fs::remove_all(run.store_dir);
  const data::ExtractSummary s = data::extract_features(manifest, m, o, run);
  if (s.failed > 0 || s.done != n_videos)
    throw Error("bench extract: " + std::to_string(s.failed) + " videos failed");
  const double model_s_after = time_models();
  const double model_s = 0.5 * (model_s_before + model_s_after);
  uint64_t bytes = 0;
  for (const auto& e : fs::directory_iterator(run.store_dir))
    if (e.path().extension() == ".safetensors") bytes += fs::file_size(e.path());

  const double e2e = s.videos_per_s(), model_rate = n_videos / model_s;
  nlohmann::json j = {{"bench", "extract"},
                      {"cpu_isa", cpu_isa()},
                      {"libtorch", TORCH_VERSION},
                      {"config", small ? "small: vits16 112px x8 frames, i3d 16x193"
                                       : "vitb16 224px x16 frames, i3d 64x224"},
                      {"dtype", a.dtype},
                      {"device", a.device},
                      {"videos", n_videos},
                      {"clip", "vp9 427x240 12fps 4s"},
                      {"threads", at::get_num_threads()},
                      {"parallel_for_threads", parallel_for_threads()},
                      {"workers", run.workers},
                      {"e2e_videos_per_s", e2e},
                      {"model_only_videos_per_s", model_rate},
                      {"model_only_videos_per_s_before_after",
                       {n_videos / model_s_before, n_videos / model_s_after}},
                      {"ratio", e2e / model_rate},
                      {"e2e_seconds", s.seconds},
                      {"model_seconds_in_e2e", s.model_seconds},
                      {"loader_idle_fraction", s.loader_idle_fraction},
                      {"store_bytes_per_video", static_cast<double>(bytes) / n_videos},
                      {"peak_rss_mb", 1024 * peak_rss_gb()}};
  if (a.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::printf(
        "extract (%s, %s): end-to-end %.3f videos/s, model-only %.3f videos/s, ratio %.2f; "
        "loader idle %.2f; %.0f KB/video; peak RSS %.0f MB\n",
        j["config"].get<std::string>().c_str(), a.dtype.c_str(), e2e, model_rate, e2e / model_rate,
        s.loader_idle_fraction, bytes / 1e3 / n_videos, 1024 * peak_rss_gb());
  }
  if (remove_dir) fs::remove_all(dir);
  return 0;
}

}  // namespace

VIDFUSE_BENCH(
    "extract", "End-to-end extraction videos/s vs the model-only rate, same run",
    [](CLI::App& sub) {
      auto a = std::make_shared<ExtractBenchArgs>();
      sub.add_flag("--json", a->json, "One JSON object per line");
      sub.add_flag("--small", a->small, "Small models and inputs: a quick run");
      sub.add_option("--videos", a->videos, "Clips to extract (default 4, small 6)");
      sub.add_option("--workers", a->workers, "Loader threads (0 = one per core)");
      sub.add_option("--dtype", a->dtype, "Compute dtype: fp32 or bf16")->capture_default_str();
      sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          ->capture_default_str();
      sub.add_option("--dir", a->dir, "Keep (and reuse) the generated clips here");
      sub.add_option("--dinov3-weights", a->dinov3_weights,
                     "A DINOv3 checkpoint instead of random weights (what a peer runs)");
      sub.add_option("--i3d-weights", a->i3d_weights,
                     "An I3D checkpoint instead of random weights (what a peer runs)");
      return [a] { return run(*a); };
    });
