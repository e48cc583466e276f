#include "vidfuse/data/extract_settings.h"

#include <filesystem>
#include <fstream>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::data {

namespace {

using nlohmann::json;

json sampling_json(const io::SamplingSpec& s) {
  return {{"kind", io::to_string(s.kind)},
          {"num_segments", s.num_segments},
          {"clip_len", s.clip_len},
          {"frame_interval", s.frame_interval},
          {"num_clips", s.num_clips},
          {"fps", s.fps},
          {"stack", s.stack},
          {"step", s.step},
          {"min_frames", s.min_frames},
          {"out_of_bound", io::to_string(s.out_of_bound)}};
}

io::SamplingSpec sampling_from_json(const json& j) {
  io::SamplingSpec s;
  s.kind = io::parse_sampler_kind(j.at("kind").get<std::string>());
  s.num_segments = j.value("num_segments", s.num_segments);
  s.clip_len = j.value("clip_len", s.clip_len);
  s.frame_interval = j.value("frame_interval", s.frame_interval);
  s.num_clips = j.value("num_clips", s.num_clips);
  s.fps = j.value("fps", s.fps);
  s.stack = j.value("stack", s.stack);
  s.step = j.value("step", s.step);
  s.min_frames = j.value("min_frames", s.min_frames);
  s.out_of_bound = io::parse_out_of_bound(j.value("out_of_bound", std::string("loop")));
  return s;
}

}  // namespace

json to_json(const ExtractSettings& st) {
  const ExtractOptions& o = st.options;
  return {{"format", "vidfuse-extract-settings"},
          {"dinov3", st.dinov3},
          {"i3d", st.i3d},
          {"flow_i3d", st.flow_i3d},
          {"semantic_sampling", sampling_json(o.semantic_sampling)},
          {"semantic_size", o.semantic_size},
          {"pool", o.pool},
          {"semantic_layers", o.semantic_layers},
          {"motion_sampling", sampling_json(o.motion_sampling)},
          {"motion_clip", o.motion_clip},
          {"motion_short_side", o.motion_short_side},
          {"motion_crop", o.motion_crop},
          {"storage_dtype", weights::dtype_name(o.storage_dtype)}};
}

ExtractSettings extract_settings_from_json(const json& j, const std::string& where) {
  ExtractSettings st;
  try {
    ExtractOptions& o = st.options;
    st.dinov3 = j.value("dinov3", std::string());
    st.i3d = j.value("i3d", std::string());
    st.flow_i3d = j.value("flow_i3d", std::string());
    o.semantic_sampling = sampling_from_json(j.at("semantic_sampling"));
    o.semantic_size = j.at("semantic_size").get<int64_t>();
    o.pool = j.at("pool").get<int64_t>();
    o.semantic_layers = j.value("semantic_layers", std::vector<int64_t>{});
    o.motion_sampling = sampling_from_json(j.at("motion_sampling"));
    o.motion_clip = j.at("motion_clip").get<int64_t>();
    o.motion_short_side = j.at("motion_short_side").get<int64_t>();
    o.motion_crop = j.at("motion_crop").get<int64_t>();
    o.storage_dtype = weights::dtype_from_name(j.at("storage_dtype").get<std::string>());
  } catch (const json::exception& e) {
    throw Error(where + ": malformed extraction settings: " + e.what());
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  return st;
}

std::string extract_settings_path(const std::string& store_dir) {
  return (std::filesystem::path(store_dir) / "extract.json").string();
}

void write_extract_settings(const std::string& store_dir, const ExtractSettings& settings) {
  write_text_atomically(extract_settings_path(store_dir), to_json(settings).dump(2) + "\n");
}

ExtractSettings read_extract_settings(const std::string& store_dir) {
  const std::string path = extract_settings_path(store_dir);
  std::ifstream in(path);
  if (!in)
    fail_file(path,
              "missing: the store was not written by `vidfuse extract` of this version, so "
              "the extraction settings cannot be reproduced");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::parse_error& e) {
    fail_file(path, std::string("not valid JSON: ") + e.what());
  }
  return extract_settings_from_json(j, path);
}

}  // namespace vidfuse::data
