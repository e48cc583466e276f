// Drawing one clip of the synthetic dataset (data/synth.h): a textured background under a
// jittering camera, the object of a catalogue row (data/synth_catalogue.h) moving as its action's
// row says, sensor noise and flicker. A pure function of its arguments: the random numbers come
// from io::SampleRng, never from <random>'s library-specific distributions.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vidfuse::data {

// Bump when the renderer changes what a seed draws: synth.json records it, and a rerun into a
// folder made by another version is refused instead of mixing two looks in one dataset.
inline constexpr int kSynthRendererVersion = 2;  // 2: a still object is placed as a shaking one

// What the pixels depend on besides the action, the object and the seed.
struct SynthRenderOptions {
  int64_t width = 160;  // even (the encoders use 4:2:0)
  int64_t height = 120;
  int64_t frames = 30;  // frames per clip
  // Shake actions oscillate with this period (frames) and are at rest at shake_still_frame + k *
  // period / 2: frames sampled at those instants do not show the shaking.
  int64_t shake_period = 8;
  int64_t shake_still_frame = 4;
  // Frames [veil_begin, veil_end) show the object as a plain grey ball (no colour, shape or
  // texture), so which object it is can be seen only in the other frames. Off when empty.
  int64_t veil_begin = 0, veil_end = 0;
  // Most a hand-held camera shifts the scene per frame (pixels; each clip draws its own up to
  // this). It moves a textured background in every frame; 0 keeps the camera still.
  double camera_jitter = 1.5;
};

// A rendered clip before encoding, with the ground truth the renderer knows.
struct RenderedClip {
  torch::Tensor frames;      // uint8 [T,H,W,3] RGB
  torch::Tensor coverage;    // float [T,H,W]: fraction of each pixel the (visible) object covers
  std::vector<double> area;  // per frame: sum of coverage (pixels)
  std::vector<double> cx;    // per frame: coverage-weighted centroid (pixels); NaN when area == 0
  std::vector<double> cy;
  // Camera shake applied to frame t (whole pixels, the scene moves by it): the centroid minus the
  // shake is where the object is in the scene, which is what the action describes.
  std::vector<int64_t> shake_x, shake_y;
};

// Renders one clip at options.width × options.height, options.frames frames. `action` is a key,
// `object` a name (both validated).
RenderedClip render_synth_clip(const SynthRenderOptions& options, const std::string& action,
                               const std::string& object, uint64_t clip_seed);

}  // namespace vidfuse::data
