#include "vidfuse/models/i3d_names.h"

#include <map>

#include "vidfuse/weights/state_dict.h"

namespace vidfuse::models {
namespace {

constexpr double kPiergiajEps = 1e-3;
constexpr double kVideoFeaturesEps = 1e-5;  // torch.nn.BatchNorm3d's default

// video_features' Inception branches (torch.nn.Sequential indices) -> piergiaj's unit names.
const std::map<std::string, std::string>& branch_names() {
  static const std::map<std::string, std::string> names = {
      {"branch_0", "b0"},    {"branch_1.0", "b1a"}, {"branch_1.1", "b1b"},
      {"branch_2.0", "b2a"}, {"branch_2.1", "b2b"}, {"branch_3.1", "b3b"}};
  return names;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.compare(0, prefix.size(), prefix) == 0;
}

// "conv3d.weight" -> "conv3d.weight", "batch3d.running_var" -> "bn.running_var".
std::string unit_tail(const std::string& tail) {
  if (starts_with(tail, "conv3d.")) return tail;
  if (starts_with(tail, "batch3d.")) return "bn." + tail.substr(8);
  return "";
}

std::string video_features_key(const std::string& key) {
  const auto dot = key.find('.');
  if (dot == std::string::npos) return "";
  const std::string head = key.substr(0, dot), rest = key.substr(dot + 1);
  if (head == "conv3d_0c_1x1") {
    const std::string tail = unit_tail(rest);
    return tail.empty() ? "" : "logits." + tail;
  }
  if (starts_with(head, "conv3d_")) {
    const std::string tail = unit_tail(rest);
    return tail.empty() ? "" : "C" + head.substr(1) + "." + tail;
  }
  if (starts_with(head, "mixed_")) {
    for (const auto& [branch, unit] : branch_names()) {
      if (!starts_with(rest, branch + ".")) continue;
      const std::string tail = unit_tail(rest.substr(branch.size() + 1));
      if (tail.empty()) return "";
      return "M" + head.substr(1) + "." + unit + "." + tail;
    }
  }
  return "";
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

const char* i3d_naming_name(I3DNaming naming) {
  switch (naming) {
    case I3DNaming::kPiergiaj:
      return "piergiaj/pytorch-i3d";
    case I3DNaming::kVideoFeatures:
      return "v-iashin/video_features (hassony2)";
    case I3DNaming::kUnknown:
      break;
  }
  return "unknown";
}

I3DNaming detect_i3d_naming(const weights::TensorMap& state) {
  const weights::TensorMap stripped = weights::strip_prefix(state, "module.");
  if (stripped.count("Conv3d_1a_7x7.conv3d.weight")) return I3DNaming::kPiergiaj;
  if (stripped.count("conv3d_1a_7x7.conv3d.weight")) return I3DNaming::kVideoFeatures;
  return I3DNaming::kUnknown;
}

std::string canonical_i3d_key(const std::string& key, I3DNaming naming) {
  switch (naming) {
    case I3DNaming::kPiergiaj:
      return key;
    case I3DNaming::kVideoFeatures:
      return video_features_key(key);
    case I3DNaming::kUnknown:
      break;
  }
  return "";
}

weights::TensorMap canonicalize_i3d_names(const weights::TensorMap& state) {
  const weights::TensorMap stripped = weights::strip_prefix(state, "module.");
  const I3DNaming naming = detect_i3d_naming(stripped);
  if (naming == I3DNaming::kUnknown) return stripped;

  weights::TensorMap out;
  for (const auto& [key, tensor] : stripped) {
    std::string name = canonical_i3d_key(key, naming);
    if (name.empty()) name = key;  // left for the strict load to report
    torch::Tensor value = tensor;
    if (naming == I3DNaming::kVideoFeatures && ends_with(name, ".bn.running_var")) {
      // Keep var + eps unchanged under piergiaj's eps. At least fp32: a bf16 variance near 1
      // cannot represent a 1e-3 shift.
      const auto dtype = torch::promote_types(tensor.scalar_type(), torch::kFloat32);
      value = (tensor.to(torch::kFloat64) + (kVideoFeaturesEps - kPiergiajEps)).to(dtype);
    }
    out[name] = value;
  }
  // Buffers PyTorch <= 0.3 did not write (and that change nothing at inference).
  for (const auto& [key, tensor] : weights::TensorMap(out)) {
    if (!ends_with(key, ".bn.running_mean")) continue;
    const std::string counter =
        key.substr(0, key.size() - std::string("running_mean").size()) + "num_batches_tracked";
    if (!out.count(counter)) out[counter] = torch::zeros({}, torch::kInt64);
  }
  return out;
}

}  // namespace vidfuse::models
