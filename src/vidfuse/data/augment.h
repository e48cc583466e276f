// Train-time augmentation of videos decoded for the backbones (data::load_stream_inputs). Kept in
// a header of its own, free of tensors, so that the train config can hold one.
#pragma once
#include <array>

#include "vidfuse/core/settings.h"

namespace vidfuse::data {

struct VideoAugment {
  // Off: training sees exactly the frames evaluation (and extraction) sees.
  bool enabled = true;
  // Semantic segments take a random frame inside their segment (TSN training) instead of the
  // centre one; the motion clip's window starts anywhere in the resampled video instead of the
  // middle. Samplers without a training mode (fixed rate, all, sliding) are not jittered.
  bool temporal_jitter = true;
  // One random crop of every frame, seen by both streams (so semantic and motion tokens still
  // describe the same region): area fraction in `scale`, aspect ratio log-uniform in `ratio`
  // (torchvision RandomResizedCrop). The streams' own transforms then resize it as usual.
  std::array<double, 2> scale{0.6, 1.0};
  std::array<double, 2> ratio{3.0 / 4.0, 4.0 / 3.0};
  // Off by default: Something-Something-style labels are directional ("pushing left to right"),
  // and a mirrored clip would carry the wrong one.
  bool hflip = false;

  // The field table (core/settings.h). The ranges' order (scale[0] <= scale[1]) is checked by
  // the train config's validate().
  template <class V>
  void fields(V& v) {
    using settings::field;
    v(field("enabled", enabled, "--source videos: augment training clips").flag("--augment"));
    v(field("temporal_jitter", temporal_jitter, "Random frame inside each segment / clip window"));
    v(field("scale", scale, "Random crop's area fraction range"));
    v(field("ratio", ratio, "Random crop's aspect ratio range"));
    v(field("hflip", hflip,
            "--source videos: random horizontal flips (wrong for direction-sensitive labels)")
          .flag("--hflip"));
  }
};

}  // namespace vidfuse::data
