#include "vidfuse/models/fusion_config.h"

#include <cmath>

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
  FusionArch arch = FusionArch::kFusion;  // through a field, for the one list of names and error
  return settings::field("arch", arch).named(kFusionArchs, arch_name).parse(name, where);
}

// The ranges of single fields are in the field table (fusion_config.h); these involve two fields.
void FusionConfig::validate(const std::string& where) const {
  settings::check_fields(*this, where);
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw Error(where + ": " + what);
  };
  require(width % heads == 0, "width (" + std::to_string(width) + ") must be divisible by heads (" +
                                  std::to_string(heads) + ")");
  require(arch != FusionArch::kFusion || depth >= 1,
          "arch \"fusion\" needs depth >= 1 cross-attention layers (depth 0 is the \"late\" arch)");
  require(std::lround(width * mlp_ratio) >= 1, "width * mlp_ratio must be >= 1");
}

std::array<int64_t, 3> pooled_semantic_grid(const FusionConfig& c,
                                            const std::array<int64_t, 3>& g) {
  const int64_t k = c.semantic_pool;
  return {g[0], (g[1] + k - 1) / k, (g[2] + k - 1) / k};
}

nlohmann::json to_json(const FusionConfig& c) { return settings::to_json_fields(c); }

FusionConfig fusion_config_from_json(const nlohmann::json& json, const std::string& where) {
  FusionConfig c;
  settings::read_fields(c, json, where);
  c.validate(where);
  return c;
}

}  // namespace vidfuse::models
