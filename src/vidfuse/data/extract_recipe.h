// What features a store holds: the backbones, the frames each stream samples, the transforms, the
// pooling and the storage dtype. Saved as <store>/extract.json; `predict` and training from videos
// read it back, so features of a new video are computed exactly the way the store's were. Where
// and how a run computes them (store folder, shards, threads, batches) is data::ExtractRun.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vidfuse/core/settings.h"
#include "vidfuse/io/optical_flow.h"
#include "vidfuse/io/sampling.h"

namespace vidfuse::data {

struct ExtractRecipe {
  // Backbone specs: a checkpoint path or "builtin"; "" turns the stream off.
  std::string dinov3;    // semantic stream
  std::string i3d;       // motion stream (I3D RGB)
  std::string flow_i3d;  // flow stream (I3D flow)

  // Semantic stream: 16 segment-sampled frames (TSN centres), HF DINOv3 preprocessing at
  // `semantic_size`², patch grid average-pooled by `pool` (1 = full resolution).
  io::SamplingSpec semantic_sampling = default_semantic_sampling();
  int64_t semantic_size = 224;
  int64_t pool = 1;
  std::vector<int64_t> semantic_layers;  // extra intermediate layers → semantic.layer_N [T,h,w,C]

  // Motion stream: resampled to 25 fps, then one centred clip of `motion_clip` frames (short
  // videos loop), I3D preprocessing (short side, centre crop, [-1, 1]). The flow stream computes
  // optical flow on the same cropped frames.
  io::SamplingSpec motion_sampling = default_motion_sampling();
  int64_t motion_clip = 64;  // 0 = every resampled frame
  int64_t motion_short_side = 256;
  int64_t motion_crop = 224;
  io::FlowOptions flow;

  torch::ScalarType storage_dtype = torch::kHalf;  // features on disk (times stay float64)

  // The field table (core/settings.h): extract.json's keys, `vidfuse extract`'s flags and the
  // per-field checks. The samplers' flags (--frames, --motion-fps) point into nested objects, so
  // the commands declare those two themselves; --dtype takes fp16 | bf16 | fp32 and is converted
  // by the command, since the file keeps the safetensors names (F16, BF16, F32).
  template <class V>
  void fields(V& v) {
    using settings::field;
    v(field("dinov3", dinov3, "DINOv3 HF model folder, checkpoint file, or builtin")
          .flag("--dinov3"));
    v(field("i3d", i3d, "I3D RGB checkpoint, or builtin").flag("--i3d"));
    v(field("flow_i3d", flow_i3d, "I3D flow checkpoint (for --streams ...,flow)")
          .flag("--flow-i3d"));
    v.object("semantic_sampling", semantic_sampling);
    v(field("semantic_size", semantic_size, "Semantic input size (multiple of 16)")
          .flag("--size")
          .positive());
    v(field("pool", pool, "Average-pool the patch grid by this factor")
          .flag("--pool")
          .at_least(1)
          .note("1 = full grid"));
    v(field("semantic_layers", semantic_layers, "Also store these DINOv3 layers' patch grids")
          .flag("--layers"));
    v.object("motion_sampling", motion_sampling);
    v(field("motion_clip", motion_clip, "Frames of the centred motion clip")
          .flag("--motion-clip")
          .at_least(0)
          .note("0 = all"));
    v(field("motion_short_side", motion_short_side, "Motion frames' short side before the crop")
          .flag("--motion-short-side")
          .positive());
    v(field("motion_crop", motion_crop, "Motion centre crop").flag("--motion-crop").positive());
    v(field("flow_method", flow.method, "Optical flow")
          .named(std::vector<io::FlowMethod>{io::FlowMethod::kTVL1, io::FlowMethod::kDIS},
                 io::flow_method_name)
          .flag("--flow-method"));
    v(field("storage_dtype", storage_dtype, "Storage dtype")
          .named(std::vector<torch::ScalarType>{torch::kHalf, torch::kBFloat16, torch::kFloat32},
                 storage_dtype_name));
  }

  bool semantic() const { return !dinov3.empty(); }
  bool motion() const { return !i3d.empty(); }
  bool flow_stream() const { return !flow_i3d.empty(); }

  static io::SamplingSpec default_semantic_sampling();
  static io::SamplingSpec default_motion_sampling();
  static std::string storage_dtype_name(torch::ScalarType dtype);  // "F16", "BF16", "F32"
};

nlohmann::json to_json(const ExtractRecipe& recipe);
// Keys left out take the defaults above; unknown keys are ignored (a newer version's files); wrong
// types and values out of range are errors naming `where`.
ExtractRecipe extract_recipe_from_json(const nlohmann::json& json, const std::string& where);

std::string extract_recipe_path(const std::string& store_dir);
void write_extract_recipe(const std::string& store_dir, const ExtractRecipe& recipe);
// Throws vidfuse::Error naming the file when it is missing or malformed.
ExtractRecipe read_extract_recipe(const std::string& store_dir);

}  // namespace vidfuse::data
