// `vidfuse embed --model PATH --output OUT.safetensors IMAGE...`: images through the HF DINOv3
// preprocessing and the model; writes `cls` [N,C] and `patch_tokens` [N,h,w,C].
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "dtype_option.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/preprocess.h"
#include "vidfuse/models/dinov3.h"

namespace vidfuse::cli {
namespace {

struct EmbedArgs {
  std::string model, output, dtype = "fp32";
  std::vector<std::string> images;
  std::vector<int64_t> size = {224, 224};
  int64_t batch = 8;
};

int run_embed(const EmbedArgs& a) {
  if (a.size.size() != 2) throw Error("--size takes two numbers: H W");
  io::check_size_multiple(a.size[0], a.size[1], 16);
  if (a.batch <= 0) throw Error("--batch must be positive");
  const torch::ScalarType dtype = parse_compute_dtype(a.dtype);
  auto model = models::load_dinov3(a.model, dtype);
  model->fuse_for_inference();
  io::check_size_multiple(a.size[0], a.size[1], model->config().patch_size);

  torch::InferenceMode guard;
  std::vector<torch::Tensor> cls, patches;
  for (size_t start = 0; start < a.images.size(); start += a.batch) {
    std::vector<torch::Tensor> pixels;
    for (size_t i = start; i < std::min(a.images.size(), start + a.batch); ++i)
      pixels.push_back(
          io::dinov3_preprocess(io::read_image_rgb(a.images[i]), a.size[0], a.size[1]));
    models::DinoV3Output out = model->forward(torch::cat(pixels).to(dtype));
    cls.push_back(out.pooler_output.to(torch::kFloat32));
    patches.push_back(out.patch_tokens.to(torch::kFloat32));
    std::cerr << "\rembed: " << std::min(a.images.size(), start + a.batch) << "/" << a.images.size()
              << " images" << std::flush;
  }
  std::cerr << "\n";
  weights::save_safetensors(
      a.output, {{"cls", torch::cat(cls)}, {"patch_tokens", torch::cat(patches)}},
      {{"model", a.model},
       {"dtype", a.dtype},
       {"size_hw", nlohmann::json(a.size).dump()},
       {"images", nlohmann::json(a.images).dump()},
       {"preprocess", "rescale 1/255 -> bilinear antialias resize -> imagenet normalize"}});
  std::cerr << "embed: wrote cls [" << a.images.size() << ", " << model->config().hidden_size
            << "] and patch_tokens [" << a.images.size() << ", " << a.size[0] / 16 << ", "
            << a.size[1] / 16 << ", " << model->config().hidden_size << "] to " << a.output << "\n";
  return 0;
}

VIDFUSE_COMMAND(
    "embed", "DINOv3 features of images (HF preprocessing): cls and patch_tokens",
    [](CLI::App& sub) {
      auto a = std::make_shared<EmbedArgs>();
      sub.add_option("--model", a->model, "DINOv3 model directory or checkpoint")->required();
      sub.add_option("--output", a->output, "Output safetensors")->required();
      sub.add_option("images", a->images, "Image files (PNG, JPEG, ...)")->required();
      sub.add_option("--size", a->size, "Resize to H W (multiples of 16)")
          ->expected(2)
          ->capture_default_str();
      sub.add_option("--dtype", a->dtype, "fp32 or bf16")->capture_default_str();
      sub.add_option("--batch", a->batch, "Images per forward")->capture_default_str();
      return [a] { return run_embed(*a); };
    });

}  // namespace
}  // namespace vidfuse::cli
