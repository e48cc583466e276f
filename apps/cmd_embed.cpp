// `vidfuse embed --model PATH --output OUT.safetensors IMAGE...`: images through the HF DINOv3
// preprocessing and the model; writes `cls` [N,C] and `patch_tokens` [N,h,w,C].
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "vidfuse/api/semantic_extractor.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/preprocess.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::cli {
namespace {

struct EmbedArgs {
  std::string model, output, dtype = "fp32", device = "auto";
  std::vector<std::string> images;
  std::vector<int64_t> size = {224, 224};
  int64_t batch = 8;
};

int run_embed(const EmbedArgs& a) {
  if (a.size.size() != 2) throw Error("--size takes two numbers: H W");
  io::check_size_multiple(a.size[0], a.size[1], 16);
  if (a.batch <= 0) throw Error("--batch must be positive");
  SemanticExtractorOptions options;
  options.device = announce_device(a.device, "embed");
  options.dtype = a.dtype;
  options.height = a.size[0];
  options.width = a.size[1];
  options.batch = a.batch;
  const SemanticExtractor extractor(a.model, options);
  std::cerr << "embed: " << a.images.size() << " images\n";
  const SemanticFeatures f = extractor.embed_files(a.images);
  weights::save_safetensors(
      a.output, {{"cls", f.cls.cpu()}, {"patch_tokens", f.patch_tokens.cpu()}},
      {{"model", a.model},
       {"dtype", a.dtype},
       {"device", extractor.device()},
       {"size_hw", nlohmann::json(a.size).dump()},
       {"images", nlohmann::json(a.images).dump()},
       {"preprocess", "rescale 1/255 -> bilinear antialias resize -> imagenet normalize"}});
  std::cerr << "embed: wrote cls " << c10::str(f.cls.sizes()) << " and patch_tokens "
            << c10::str(f.patch_tokens.sizes()) << " to " << a.output << "\n";
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
      sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          ->capture_default_str();
      return [a] { return run_embed(*a); };
    });

}  // namespace
}  // namespace vidfuse::cli
