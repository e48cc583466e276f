#include "vidfuse/models/dinov3_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <type_traits>

#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/quote.h"

namespace vidfuse::models {

void DinoV3Config::validate(const std::string& source) const {
  auto bad = [&](const std::string& what) { fail_file(source, what); };
  if (hidden_size <= 0 || num_hidden_layers <= 0 || num_attention_heads <= 0 ||
      intermediate_size <= 0 || patch_size <= 0 || num_channels <= 0 || num_register_tokens < 0)
    bad("sizes must be positive (hidden_size, num_hidden_layers, num_attention_heads, "
        "intermediate_size, patch_size, num_channels; num_register_tokens >= 0)");
  // Upper bounds far above every released variant (7B: hidden 4096, MLP 8192, 40 layers, patch
  // 16), so that a hostile config.json is refused before its model is allocated.
  auto at_most = [&](const char* key, int64_t value, int64_t hi) {
    if (value > hi)
      bad(std::string(key) + " " + std::to_string(value) + " is out of range (at most " +
          std::to_string(hi) + ")");
  };
  at_most("hidden_size", hidden_size, 16384);
  at_most("num_hidden_layers", num_hidden_layers, 1024);
  at_most("num_attention_heads", num_attention_heads, 1024);
  at_most("intermediate_size", intermediate_size, 131072);
  at_most("patch_size", patch_size, 1024);
  at_most("num_channels", num_channels, 64);
  at_most("num_register_tokens", num_register_tokens, 1024);
  if (!(layer_norm_eps > 0 && std::isfinite(layer_norm_eps)))
    bad("layer_norm_eps must be a positive number, got " + std::to_string(layer_norm_eps));
  if (!(rope_theta > 0 && std::isfinite(rope_theta)))
    bad("rope_theta must be a positive number, got " + std::to_string(rope_theta));
  if (!std::isfinite(layerscale_value)) bad("layerscale_value must be finite");
  if (hidden_size % num_attention_heads != 0)
    bad("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
        std::to_string(num_attention_heads));
  if (head_dim() % 4 != 0)
    bad("head dim " + std::to_string(head_dim()) + " must be a multiple of 4 for 2-D RoPE");
  if (hidden_act != "gelu" && hidden_act != "silu" && hidden_act != "relu" &&
      hidden_act != "gelu_pytorch_tanh" && hidden_act != "swiglu")
    bad("unsupported hidden_act " + quoted_short(hidden_act) +
        " (gelu, silu, relu, gelu_pytorch_tanh)");
}

DinoV3Config DinoV3Config::from_json(const nlohmann::json& j, const std::string& source) {
  if (!j.is_object())
    fail_file(source, std::string("expected a JSON object, got ") + j.type_name());
  DinoV3Config c;
  try {
    auto get = [&](const char* key, auto& field) {
      if (!j.contains(key) || j[key].is_null()) return;
      const nlohmann::json& v = j.at(key);
      // nlohmann converts 1e300 to int64_t with a cast whose result is undefined: refuse it.
      if constexpr (std::is_same_v<std::decay_t<decltype(field)>, int64_t>)
        if (!v.is_number_integer() &&
            !(v.is_number_float() && std::floor(v.get<double>()) == v.get<double>() &&
              std::fabs(v.get<double>()) < 9.0e18))
          fail_file(source, std::string("\"") + key + "\" must be an integer, got " +
                                quoted_short(v.is_string() ? v.get<std::string>() : v.dump()));
      try {
        v.get_to(field);
      } catch (const nlohmann::json::exception& e) {
        fail_file(source, std::string("\"") + key + "\" has the wrong type: " + e.what());
      }
    };
    get("hidden_size", c.hidden_size);
    get("num_hidden_layers", c.num_hidden_layers);
    get("num_attention_heads", c.num_attention_heads);
    get("intermediate_size", c.intermediate_size);
    get("patch_size", c.patch_size);
    get("num_channels", c.num_channels);
    get("num_register_tokens", c.num_register_tokens);
    get("layer_norm_eps", c.layer_norm_eps);
    get("rope_theta", c.rope_theta);
    get("hidden_act", c.hidden_act);
    get("use_gated_mlp", c.use_gated_mlp);
    get("query_bias", c.query_bias);
    get("key_bias", c.key_bias);
    get("value_bias", c.value_bias);
    get("proj_bias", c.proj_bias);
    get("mlp_bias", c.mlp_bias);
    get("layerscale_value", c.layerscale_value);
  } catch (const nlohmann::json::exception& e) {
    fail_file(source, std::string("bad field type: ") + e.what());
  }
  if (j.contains("model_type") && j["model_type"].is_string() &&
      j["model_type"].get<std::string>().rfind("dinov3", 0) != 0)
    fail_file(source, "model_type is " + quoted_short(j["model_type"].get<std::string>()) +
                          ", not a DINOv3 ViT (dinov3_vit)");
  if (c.hidden_act == "swiglu") c.hidden_act = "silu";
  c.validate(source);
  return c;
}

DinoV3Config DinoV3Config::from_file(const std::string& path) {
  return from_json(read_json_file(path, "model config"), path);
}

nlohmann::json DinoV3Config::to_json() const {
  return {{"model_type", "dinov3_vit"},
          {"architectures", {"DINOv3ViTModel"}},
          {"hidden_size", hidden_size},
          {"num_hidden_layers", num_hidden_layers},
          {"num_attention_heads", num_attention_heads},
          {"intermediate_size", intermediate_size},
          {"patch_size", patch_size},
          {"num_channels", num_channels},
          {"num_register_tokens", num_register_tokens},
          {"layer_norm_eps", layer_norm_eps},
          {"rope_theta", rope_theta},
          {"hidden_act", hidden_act},
          {"use_gated_mlp", use_gated_mlp},
          {"query_bias", query_bias},
          {"key_bias", key_bias},
          {"value_bias", value_bias},
          {"proj_bias", proj_bias},
          {"mlp_bias", mlp_bias},
          {"layerscale_value", layerscale_value}};
}

DinoV3Config DinoV3Config::preset(const std::string& name) {
  DinoV3Config c;
  auto set = [&](int64_t hidden, int64_t layers, int64_t heads, int64_t mlp, bool gated) {
    c.hidden_size = hidden;
    c.num_hidden_layers = layers;
    c.num_attention_heads = heads;
    c.intermediate_size = mlp;
    c.use_gated_mlp = gated;
    c.hidden_act = gated ? "silu" : "gelu";
  };
  if (name == "vits16")
    set(384, 12, 6, 1536, false);
  else if (name == "vits16plus")
    set(384, 12, 6, 1536, true);
  else if (name == "vitb16")
    set(768, 12, 12, 3072, false);
  else if (name == "vitl16")
    set(1024, 24, 16, 4096, false);
  else if (name == "vith16plus")
    set(1280, 32, 20, 5120, true);
  else if (name == "vit7b16") {
    set(4096, 40, 32, 8192, true);
    c.query_bias = c.value_bias = false;
  } else {
    throw Error("unknown DINOv3 preset '" + name +
                "' (vits16, vits16plus, vitb16, vitl16, vith16plus, vit7b16)");
  }
  return c;
}

}  // namespace vidfuse::models
