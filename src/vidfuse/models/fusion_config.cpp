#include "vidfuse/models/fusion_config.h"

#include <cmath>
#include <sstream>

#include "vidfuse/core/error.h"

namespace vidfuse::models {

std::string arch_name(FusionArch arch) {
  switch (arch) {
    case FusionArch::kFusion:
      return "fusion";
    case FusionArch::kSemantic:
      return "semantic";
    case FusionArch::kMotion:
      return "motion";
    case FusionArch::kLate:
      return "late";
  }
  return "?";
}

FusionArch arch_from_name(const std::string& name, const std::string& where) {
  for (FusionArch a :
       {FusionArch::kFusion, FusionArch::kSemantic, FusionArch::kMotion, FusionArch::kLate})
    if (arch_name(a) == name) return a;
  throw Error(where + ": arch \"" + name +
              "\" is not one of \"fusion\", \"semantic\", \"motion\", \"late\"");
}

namespace {
void require(bool ok, const std::string& where, const std::string& what) {
  if (!ok) throw Error(where + ": " + what);
}
std::string grid_str(const std::array<int64_t, 3>& g) {
  return "[" + std::to_string(g[0]) + ", " + std::to_string(g[1]) + ", " + std::to_string(g[2]) +
         "]";
}
}  // namespace

void FusionConfig::validate(const std::string& where) const {
  require(semantic_dim > 0, where,
          "semantic_dim must be positive, got " + std::to_string(semantic_dim));
  require(motion_dim > 0, where, "motion_dim must be positive, got " + std::to_string(motion_dim));
  for (int64_t v : semantic_grid)
    require(v > 0, where, "semantic_grid entries must be positive, got " + grid_str(semantic_grid));
  for (int64_t v : motion_grid)
    require(v > 0, where, "motion_grid entries must be positive, got " + grid_str(motion_grid));
  require(semantic_pool >= 1, where,
          "semantic_pool must be >= 1 (1 = no pooling), got " + std::to_string(semantic_pool));
  require(width > 0, where, "width must be positive, got " + std::to_string(width));
  require(heads > 0, where, "heads must be positive, got " + std::to_string(heads));
  require(width % heads == 0, where,
          "width (" + std::to_string(width) + ") must be divisible by heads (" +
              std::to_string(heads) + ")");
  require(depth >= 0, where, "depth must be >= 0, got " + std::to_string(depth));
  require(arch != FusionArch::kFusion || depth >= 1, where,
          "arch \"fusion\" needs depth >= 1 cross-attention layers (depth 0 is the \"late\" arch)");
  require(mlp_ratio > 0, where, "mlp_ratio must be positive");
  require(std::lround(width * mlp_ratio) >= 1, where, "width * mlp_ratio must be >= 1");
  require(pool_queries >= 1, where,
          "pool_queries must be >= 1, got " + std::to_string(pool_queries));
  for (auto [name, p] : {std::pair<const char*, double>{"dropout", dropout},
                         {"attn_dropout", attn_dropout},
                         {"head_dropout", head_dropout}})
    require(p >= 0 && p < 1, where,
            std::string(name) + " must be in [0, 1), got " + std::to_string(p));
  require(num_classes >= 2, where, "num_classes must be >= 2, got " + std::to_string(num_classes));
  require(layer_norm_eps > 0, where, "layer_norm_eps must be positive");
}

std::array<int64_t, 3> pooled_semantic_grid(const FusionConfig& c,
                                            const std::array<int64_t, 3>& g) {
  const int64_t k = c.semantic_pool;
  return {g[0], (g[1] + k - 1) / k, (g[2] + k - 1) / k};
}

nlohmann::json to_json(const FusionConfig& c) {
  return {{"arch", arch_name(c.arch)},
          {"semantic_dim", c.semantic_dim},
          {"motion_dim", c.motion_dim},
          {"semantic_grid", c.semantic_grid},
          {"motion_grid", c.motion_grid},
          {"use_cls", c.use_cls},
          {"semantic_pool", c.semantic_pool},
          {"standardize_inputs", c.standardize_inputs},
          {"width", c.width},
          {"depth", c.depth},
          {"heads", c.heads},
          {"mlp_ratio", c.mlp_ratio},
          {"bidirectional", c.bidirectional},
          {"pool_queries", c.pool_queries},
          {"joint_pool", c.joint_pool},
          {"dropout", c.dropout},
          {"attn_dropout", c.attn_dropout},
          {"head_dropout", c.head_dropout},
          {"num_classes", c.num_classes},
          {"layer_norm_eps", c.layer_norm_eps}};
}

FusionConfig fusion_config_from_json(const nlohmann::json& json, const std::string& where) {
  FusionConfig c;
  JsonObjectReader r(json, where);
  std::string arch = arch_name(c.arch);
  r.read("arch", arch);
  c.arch = arch_from_name(arch, where);
  r.read("semantic_dim", c.semantic_dim);
  r.read("motion_dim", c.motion_dim);
  r.read("semantic_grid", c.semantic_grid);
  r.read("motion_grid", c.motion_grid);
  r.read("use_cls", c.use_cls);
  r.read("semantic_pool", c.semantic_pool);
  r.read("standardize_inputs", c.standardize_inputs);
  r.read("width", c.width);
  r.read("depth", c.depth);
  r.read("heads", c.heads);
  r.read("mlp_ratio", c.mlp_ratio);
  r.read("bidirectional", c.bidirectional);
  r.read("pool_queries", c.pool_queries);
  r.read("joint_pool", c.joint_pool);
  r.read("dropout", c.dropout);
  r.read("attn_dropout", c.attn_dropout);
  r.read("head_dropout", c.head_dropout);
  r.read("num_classes", c.num_classes);
  r.read("layer_norm_eps", c.layer_norm_eps);
  r.finish();
  c.validate(where);
  return c;
}

// --- JsonObjectReader ---------------------------------------------------------------------------

JsonObjectReader::JsonObjectReader(const nlohmann::json& json, std::string where)
    : json_(json), where_(std::move(where)) {
  if (!json_.is_object())
    throw Error(where_ + ": expected a JSON object, got " + std::string(json_.type_name()));
}

const nlohmann::json* JsonObjectReader::take(const char* key) {
  known_.insert(key);
  auto it = json_.find(key);
  return it == json_.end() ? nullptr : &*it;
}

const nlohmann::json* JsonObjectReader::child(const char* key) { return take(key); }

void JsonObjectReader::fail_type(const char* key, const char* expected) const {
  throw Error(where_ + ": \"" + key + "\" must be " + expected + ", got " + json_.at(key).dump());
}

void JsonObjectReader::read(const char* key, int64_t& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (v->is_number_integer()) {
    out = v->get<int64_t>();
  } else if (v->is_number_float() && std::floor(v->get<double>()) == v->get<double>()) {
    out = static_cast<int64_t>(v->get<double>());
  } else {
    fail_type(key, "an integer");
  }
}

void JsonObjectReader::read(const char* key, double& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_number()) fail_type(key, "a number");
  out = v->get<double>();
}

void JsonObjectReader::read(const char* key, bool& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_boolean()) fail_type(key, "true or false");
  out = v->get<bool>();
}

void JsonObjectReader::read(const char* key, std::string& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_string()) fail_type(key, "a string");
  out = v->get<std::string>();
}

void JsonObjectReader::read(const char* key, std::array<int64_t, 3>& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_array() || v->size() != 3) fail_type(key, "an array of 3 integers");
  for (size_t i = 0; i < 3; ++i) {
    if (!(*v)[i].is_number_integer()) fail_type(key, "an array of 3 integers");
    out[i] = (*v)[i].get<int64_t>();
  }
}

void JsonObjectReader::read(const char* key, std::array<double, 2>& out) {
  const nlohmann::json* v = take(key);
  if (!v) return;
  if (!v->is_array() || v->size() != 2) fail_type(key, "an array of 2 numbers");
  for (size_t i = 0; i < 2; ++i) {
    if (!(*v)[i].is_number()) fail_type(key, "an array of 2 numbers");
    out[i] = (*v)[i].get<double>();
  }
}

void JsonObjectReader::finish() const {
  std::ostringstream unknown;
  int n = 0;
  for (auto it = json_.begin(); it != json_.end(); ++it)
    if (!known_.count(it.key())) unknown << (n++ ? ", " : "") << '"' << it.key() << '"';
  if (n == 0) return;
  std::ostringstream known;
  int k = 0;
  for (const auto& key : known_) known << (k++ ? ", " : "") << key;
  throw Error(where_ + ": unknown key" + (n > 1 ? "s " : " ") + unknown.str() +
              " (known keys: " + known.str() + ")");
}

}  // namespace vidfuse::models
