#include "vidfuse/data/extract_recipe.h"

#include <filesystem>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
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

io::SamplingSpec sampling_from_json(const json& j, io::SamplingSpec s) {
  s.kind = io::parse_sampler_kind(j.value("kind", io::to_string(s.kind)));
  s.num_segments = j.value("num_segments", s.num_segments);
  s.clip_len = j.value("clip_len", s.clip_len);
  s.frame_interval = j.value("frame_interval", s.frame_interval);
  s.num_clips = j.value("num_clips", s.num_clips);
  s.fps = j.value("fps", s.fps);
  s.stack = j.value("stack", s.stack);
  s.step = j.value("step", s.step);
  s.min_frames = j.value("min_frames", s.min_frames);
  s.out_of_bound = io::parse_out_of_bound(j.value("out_of_bound", io::to_string(s.out_of_bound)));
  return s;
}

std::string flow_method_name(io::FlowMethod m) {
  return m == io::FlowMethod::kDIS ? "dis" : "tvl1";
}

}  // namespace

io::SamplingSpec ExtractRecipe::default_semantic_sampling() {
  io::SamplingSpec s;
  s.kind = io::SamplingSpec::Kind::Segment;
  s.num_segments = 16;
  return s;
}

io::SamplingSpec ExtractRecipe::default_motion_sampling() {
  io::SamplingSpec s;
  s.kind = io::SamplingSpec::Kind::FixedRate;
  s.fps = 25.0;
  return s;
}

json to_json(const ExtractRecipe& r) {
  return {{"format", "vidfuse-extract-settings"},
          {"dinov3", r.dinov3},
          {"i3d", r.i3d},
          {"flow_i3d", r.flow_i3d},
          {"semantic_sampling", sampling_json(r.semantic_sampling)},
          {"semantic_size", r.semantic_size},
          {"pool", r.pool},
          {"semantic_layers", r.semantic_layers},
          {"motion_sampling", sampling_json(r.motion_sampling)},
          {"motion_clip", r.motion_clip},
          {"motion_short_side", r.motion_short_side},
          {"motion_crop", r.motion_crop},
          {"flow_method", flow_method_name(r.flow.method)},
          {"flow_bound", r.flow.bound},
          {"storage_dtype", weights::dtype_name(r.storage_dtype)}};
}

ExtractRecipe extract_recipe_from_json(const json& j, const std::string& where) {
  ExtractRecipe r;
  try {
    if (!j.is_object()) throw Error("expected a JSON object, got " + std::string(j.type_name()));
    r.dinov3 = j.value("dinov3", r.dinov3);
    r.i3d = j.value("i3d", r.i3d);
    r.flow_i3d = j.value("flow_i3d", r.flow_i3d);
    if (j.contains("semantic_sampling"))
      r.semantic_sampling = sampling_from_json(j.at("semantic_sampling"), r.semantic_sampling);
    r.semantic_size = j.value("semantic_size", r.semantic_size);
    r.pool = j.value("pool", r.pool);
    r.semantic_layers = j.value("semantic_layers", r.semantic_layers);
    if (j.contains("motion_sampling"))
      r.motion_sampling = sampling_from_json(j.at("motion_sampling"), r.motion_sampling);
    r.motion_clip = j.value("motion_clip", r.motion_clip);
    r.motion_short_side = j.value("motion_short_side", r.motion_short_side);
    r.motion_crop = j.value("motion_crop", r.motion_crop);
    r.flow.method = io::flow_method_from_name(j.value("flow_method", std::string("tvl1")));
    r.flow.bound = j.value("flow_bound", r.flow.bound);
    r.storage_dtype =
        weights::dtype_from_name(j.value("storage_dtype", weights::dtype_name(r.storage_dtype)));
  } catch (const json::exception& e) {
    throw Error(where + ": malformed extraction settings: " + e.what());
  } catch (const Error& e) {
    throw Error(where + ": " + e.what());
  }
  return r;
}

std::string extract_recipe_path(const std::string& store_dir) {
  return (std::filesystem::path(store_dir) / "extract.json").string();
}

void write_extract_recipe(const std::string& store_dir, const ExtractRecipe& recipe) {
  write_text_atomically(extract_recipe_path(store_dir), to_json(recipe).dump(2) + "\n");
}

ExtractRecipe read_extract_recipe(const std::string& store_dir) {
  const std::string path = extract_recipe_path(store_dir);
  if (!std::filesystem::exists(path))
    fail_file(path,
              "missing: the store was not written by `vidfuse extract` of this version, so "
              "the extraction settings cannot be reproduced");
  return extract_recipe_from_json(read_json_file(path, "extraction settings"), path);
}

}  // namespace vidfuse::data
