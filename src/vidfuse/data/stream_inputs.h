// One video decoded and transformed for the backbones: what `vidfuse extract` feeds DINOv3 and
// I3D, and what training from videos feeds them (then with augmentation). One function serves
// both, so features computed live are the features a store holds.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "vidfuse/data/augment.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/io/video_transforms.h"

namespace vidfuse::data {

struct StreamInputs {
  torch::Tensor semantic;  // [Ts, 3, S, S] io::dinov3_transform output; undefined if not asked
  torch::Tensor motion;    // [3, Tm, crop, crop] io::i3d_transform output; undefined if not asked
  std::vector<int64_t> semantic_indices, motion_indices;  // source frame of each output frame
  std::vector<double> semantic_times, motion_times;       // their timestamps (s)
  io::CropBox crop;      // the region of the decoded frames both streams saw (all of it at eval)
  bool flipped = false;  // mirrored (augmentation with hflip on)
  int64_t decoded_frames = 0;         // distinct frames decoded (the union of both streams')
  std::vector<std::string> warnings;  // sampling notes and decode warnings, each naming the file
};

// Decodes the frames `recipe` samples for the requested streams (each frame once, however many
// streams use it; one decoder thread, since callers run one video per thread) and applies the
// streams' transforms (semantic_size, motion_short_side, motion_crop). With `augment` (and
// augment->enabled) the positions and the crop are drawn from `seed` (see VideoAugment); the same
// seed gives the same frames. Throws vidfuse::Error naming `path` when the video cannot be read.
StreamInputs load_stream_inputs(const std::string& path, const ExtractRecipe& recipe, bool semantic,
                                bool motion, const VideoAugment* augment = nullptr,
                                uint64_t seed = 0);

}  // namespace vidfuse::data
