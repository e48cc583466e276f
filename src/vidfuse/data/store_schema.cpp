#include "vidfuse/data/store_schema.h"

#include "vidfuse/core/error.h"

namespace vidfuse::data {
namespace {

void require_i3d_stream(Stream s, const char* what) {
  if (s == Stream::Semantic) throw Error(std::string("the semantic stream has no ") + what);
}

}  // namespace

const std::string& stream_name(Stream s) {
  static const std::string names[] = {"semantic", "motion", "flow"};
  return names[static_cast<int>(s)];
}

Stream parse_stream(const std::string& name) {
  for (Stream s : kAllStreams)
    if (stream_name(s) == name) return s;
  throw Error("unknown stream '" + name + "' (semantic, motion or flow)");
}

std::string semantic_layer_tensor(int64_t layer) {
  return "semantic.layer_" + std::to_string(layer);
}

std::string mixed_5c_tensor(Stream s) {
  require_i3d_stream(s, "mixed_5c tensor");
  return stream_name(s) + ".mixed_5c";
}

std::string features_tensor(Stream s) {
  require_i3d_stream(s, "features tensor");
  return stream_name(s) + ".features";
}

std::string times_tensor(Stream s) { return stream_name(s) + ".times"; }

bool is_times_tensor(const std::string& name) {
  const std::string suffix = ".times";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string stream_metadata_key(Stream s, const std::string& field) {
  return stream_name(s) + "." + field;
}

std::vector<StoreTensor> stream_tensors(Stream s) {
  if (s == Stream::Semantic)
    return {{kSemanticCls, "[T,C]"}, {kSemanticPatch, "[T,h,w,C]"}, {times_tensor(s), "[T]"}};
  return {{mixed_5c_tensor(s), "[1024,T',H',W']"},
          {features_tensor(s), "[1024]"},
          {times_tensor(s), "[Tm]"}};
}

}  // namespace vidfuse::data
