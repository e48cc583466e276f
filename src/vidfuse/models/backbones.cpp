#include "vidfuse/models/backbones.h"

#include <cmath>

namespace vidfuse::models {

namespace {

// Fixed seeds: the built-in networks must be the same in every process.
constexpr uint64_t kDinoSeed = 20250814, kI3DSeed = 20170522;

// What a trained network's activations look like, which the default PyTorch init does not give:
// ViT linears and the patch projection at std 0.02 (DINOv3's own init), so the residual branches
// start small and the output tokens keep the appearance of their patch; I3D convolutions at He
// (fan-in) scale, so ten ReLU stages neither vanish nor explode (with LibTorch's default the
// Mixed_5c activations of a random I3D are ~1e-7, below fp16 resolution).
void init_like_trained(torch::nn::Module& module, bool vit) {
  torch::NoGradGuard no_grad;
  for (auto& p : module.named_parameters()) {
    const std::string& name = p.key();
    torch::Tensor t = p.value();
    const bool is_bias = name.size() >= 4 && name.compare(name.size() - 4, 4, "bias") == 0;
    const bool is_norm = name.find("norm") != std::string::npos ||
                         name.find("bn.") != std::string::npos ||
                         name.find("batch3d") != std::string::npos;
    if (is_norm) continue;
    if (is_bias) {
      t.zero_();
    } else if (vit && t.dim() >= 2) {
      t.normal_(0, 0.02);
    } else if (!vit && t.dim() == 5) {
      const double fan_in = static_cast<double>(t[0].numel());
      t.normal_(0, std::sqrt(2.0 / fan_in));
    }
  }
}

}  // namespace

DinoV3Config builtin_dinov3_config() {
  DinoV3Config c;
  c.hidden_size = 192;
  c.num_hidden_layers = 4;
  c.num_attention_heads = 3;
  c.intermediate_size = 768;
  c.layerscale_value = 1.0;
  return c;
}

I3DConfig builtin_i3d_config(int64_t in_channels) {
  I3DConfig c;
  c.in_channels = in_channels;
  c.width = 0.25;
  return c;
}

DinoV3ViT dinov3_from_spec(const std::string& spec, torch::ScalarType dtype) {
  if (spec != kBuiltinBackbone) return load_dinov3(spec, dtype);
  torch::manual_seed(kDinoSeed);
  DinoV3ViT model(builtin_dinov3_config());
  init_like_trained(*model, /*vit=*/true);
  model->to(dtype);
  model->eval();
  return model;
}

InceptionI3d i3d_from_spec(const std::string& spec, int64_t in_channels) {
  if (spec != kBuiltinBackbone) return load_i3d(spec);
  torch::manual_seed(kI3DSeed + static_cast<uint64_t>(in_channels));
  InceptionI3d model(builtin_i3d_config(in_channels));
  init_like_trained(*model, /*vit=*/false);
  model->eval();
  return model;
}

std::string describe_backbone(const std::string& spec, const std::string& stream) {
  if (spec == kBuiltinBackbone) {
    if (stream == "semantic")
      return "built-in DINOv3-topology ViT (hidden 192, 4 layers, patch 16), random weights "
             "(seed " +
             std::to_string(kDinoSeed) + "), not pretrained";
    return "built-in I3D topology at width 0.25 (Mixed_5c 256 channels), random weights (seed " +
           std::to_string(kI3DSeed) + "), not pretrained";
  }
  return spec;
}

}  // namespace vidfuse::models
