// DINOv3 ViT configuration: the fields of a Hugging Face `config.json` (model_type "dinov3_vit"), and
// the named presets of the released variants.
#pragma once
#include <nlohmann/json_fwd.hpp>
#include <string>

namespace vidfuse::models {

struct DinoV3Config {
  int64_t hidden_size = 768;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t intermediate_size = 3072;
  int64_t patch_size = 16;
  int64_t num_channels = 3;
  int64_t num_register_tokens = 4;
  double layer_norm_eps = 1e-5;
  double rope_theta = 100.0;
  std::string hidden_act = "gelu";  // gelu (erf) | silu | relu | gelu_pytorch_tanh
  bool use_gated_mlp = false;
  bool query_bias = true;
  bool key_bias = false;
  bool value_bias = true;
  bool proj_bias = true;
  bool mlp_bias = true;
  double layerscale_value = 1.0;

  int64_t head_dim() const { return hidden_size / num_attention_heads; }

  // Throws vidfuse::Error (naming `source`) on inconsistent values.
  void validate(const std::string& source = "config") const;

  static DinoV3Config from_json(const nlohmann::json& j, const std::string& source = "config.json");
  static DinoV3Config from_file(const std::string& path);
  nlohmann::json to_json() const;

  // "vits16", "vits16plus", "vitb16", "vitl16", "vith16plus", "vit7b16"; throws on unknown names.
  static DinoV3Config preset(const std::string& name);
};

}  // namespace vidfuse::models
