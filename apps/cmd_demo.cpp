// `vidfuse demo`: the main job on an embedded default, for a fresh machine with no weights.
// Draws a built-in test image, runs it through the DINOv3 preprocessing and a DINOv3 ViT (the real
// one with --dinov3 DIR; otherwise a built-in ViT-S/16-shaped model with seeded random weights,
// said plainly), and writes the features plus a patch-similarity map as PNG.
#include <chrono>
#include <filesystem>
#include <iostream>

#include "command.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/preprocess.h"
#include "vidfuse/models/dinov3.h"

namespace vidfuse::cli {
namespace {

struct DemoArgs {
  std::string out = "vidfuse-demo";
  std::string dinov3;
};

// A 240x320 scene: sky-to-ground gradient, a red disc and a blue square, so the patch similarity
// map has regions to find.
torch::Tensor builtin_image() {
  const int64_t h = 240, w = 320;
  auto ys = torch::arange(h, torch::kFloat32).view({h, 1}).expand({h, w});
  auto xs = torch::arange(w, torch::kFloat32).view({1, w}).expand({h, w});
  auto r = 90 + 100 * ys / h, g = 140 + 60 * ys / h, b = 230 - 150 * ys / h;
  auto disc = ((ys - 120).pow(2) + (xs - 100).pow(2)) < 45 * 45;
  auto square = (ys > 80) & (ys < 180) & (xs > 190) & (xs < 290);
  r = torch::where(disc, torch::full_like(r, 220), torch::where(square, torch::full_like(r, 30), r));
  g = torch::where(disc, torch::full_like(g, 40), torch::where(square, torch::full_like(g, 60), g));
  b = torch::where(disc, torch::full_like(b, 40), torch::where(square, torch::full_like(b, 200), b));
  return torch::stack({r, g, b}, -1).clamp(0, 255).to(torch::kUInt8);
}

int run_demo(const DemoArgs& a) {
  namespace fs = std::filesystem;
  fs::create_directories(a.out);
  const std::string image_path = (fs::path(a.out) / "input.png").string();
  io::write_image_rgb(image_path, builtin_image());

  models::DinoV3ViT model{nullptr};
  std::string backbone;
  if (!a.dinov3.empty()) {
    model = models::load_dinov3(a.dinov3);
    backbone = "DINOv3 from " + a.dinov3 + " (pretrained weights as given)";
  } else {
    torch::manual_seed(0);
    model = models::DinoV3ViT(models::DinoV3Config::preset("vits16"));
    model->eval();
    backbone =
        "built-in DINOv3 ViT-S/16 architecture with RANDOM weights (seed 0): features show the "
        "pipeline works, not what a pretrained model sees; pass --dinov3 DIR for real weights";
  }
  model->fuse_for_inference();
  torch::InferenceMode guard;
  const auto t0 = std::chrono::steady_clock::now();
  torch::Tensor pixels = io::dinov3_preprocess(io::read_image_rgb(image_path), 224, 224);
  models::DinoV3Output out = model->forward(pixels);
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Cosine similarity of every patch to the patch at the disc's centre, as a grey-level map.
  torch::Tensor patches = torch::nn::functional::normalize(
      out.patch_tokens[0], torch::nn::functional::NormalizeFuncOptions().dim(-1));
  torch::Tensor sim = torch::matmul(patches, patches[7][4]);
  torch::Tensor img = ((sim - sim.min()) / (sim.max() - sim.min() + 1e-6) * 255).to(torch::kUInt8);
  img = img.unsqueeze(-1).expand({-1, -1, 3}).contiguous();
  img = img.repeat_interleave(16, 0).repeat_interleave(16, 1).contiguous();
  const std::string sim_path = (fs::path(a.out) / "patch_similarity.png").string();
  io::write_image_rgb(sim_path, img);
  const std::string feat_path = (fs::path(a.out) / "features.safetensors").string();
  weights::save_safetensors(feat_path, {{"cls", out.pooler_output}, {"patch_tokens", out.patch_tokens}},
                            {{"backbone", backbone}, {"image", image_path}});

  std::cout << "vidfuse demo\n"
            << "  backbone : " << backbone << "\n"
            << "  input    : " << image_path << " (240x320, built in) -> pixel_values "
            << pixels.sizes() << "\n"
            << "  output   : cls " << out.pooler_output.sizes() << ", patch_tokens "
            << out.patch_tokens.sizes() << " in " << secs << " s\n"
            << "  wrote    : " << feat_path << "\n"
            << "             " << sim_path << " (similarity of each patch to the disc centre)\n";
  return 0;
}

VIDFUSE_COMMAND("demo", "Run the pipeline on a built-in default and write its outputs",
                [](CLI::App& sub) {
                  auto a = std::make_shared<DemoArgs>();
                  sub.add_option("--out", a->out, "Output directory")->capture_default_str();
                  sub.add_option("--dinov3", a->dinov3, "Real DINOv3 model directory (optional)");
                  return [a] { return run_demo(*a); };
                });

}  // namespace
}  // namespace vidfuse::cli
