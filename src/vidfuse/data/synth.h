// A procedural "something-something" dataset: short clips of one object doing one action (moving
// left/right/up/down, approaching/receding, rotating, appearing/disappearing, falling, nothing,
// shaking),
// rendered from a seed and written as real encoded videos (VP9 WebM and/or H.264 MP4) with
// manifests in the SSv2 format. Three label sets share one videos folder: the action (the SSv2
// template), the object identity, and the composite action × object, so a model that only sees
// appearance (or only motion) cannot solve the composite task. Everything is a pure function of
// the options: the same seed gives the same manifests and the same pixels on every machine (the
// random numbers come from io::SampleRng, never from <random>'s library-specific distributions).
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace vidfuse::data {

struct SynthAction {
  std::string key;            // short name for the command line: "left-to-right", "fall", …
  std::string template_text;  // SSv2 template: "Moving [something] from left to right"
  std::string class_name;     // the template without brackets: the labels.json key
};

// The catalogue, in its canonical order (the order "--actions N" takes the first N from).
const std::vector<SynthAction>& synth_actions();
// Object identities (appearance classes: shape + colour family), canonical order.
const std::vector<std::string>& synth_objects();

// "N" (the first N of the catalogue) or a comma-separated list of names. Actions match by key or
// by class name / template (case-insensitive, brackets, '_' and '-' ignored where they would
// differ); objects by name ("red ball", "red-ball", "red_ball"). Returns keys / object names in
// canonical order without repeats. Unknown names throw vidfuse::Error listing the valid ones.
std::vector<std::string> parse_synth_actions(const std::string& spec);
std::vector<std::string> parse_synth_objects(const std::string& spec);

struct SynthOptions {
  uint64_t seed = 0;
  int64_t clips = 300;
  double val_fraction = 0.25;  // rounded to whole clips; a class's last clip stays in train
  int64_t width = 160;         // even (the encoders use 4:2:0)
  int64_t height = 120;
  double fps = 12.0;
  int64_t frames = 30;               // frames per clip
  std::vector<std::string> actions;  // action keys; empty = all
  std::vector<std::string> objects;  // object names; empty = all
  std::string format = "webm";       // webm (VP9) | mp4 (H.264) | both (half the clips each)
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
  int jobs = 0;  // render/encode workers, 0 = one per core; output identical
};

// Checks the options and puts them in canonical form (empty lists filled, names resolved and in
// catalogue order). Throws vidfuse::Error naming the bad option.
SynthOptions normalize_synth_options(SynthOptions options);

// What one clip will be. Classes are dealt in rounds of actions × objects (every composite class
// once per round, in a seed-dependent order that keeps any prefix nearly balanced over actions and
// over objects), so a dataset is balanced over all three label sets.
struct SynthClipPlan {
  int64_t index = 0;
  std::string id;         // SSv2-style numeric id: "1", "2", …
  std::string action;     // key
  std::string object;     // name
  std::string split;      // "train" or "validation"
  std::string extension;  // "webm" or "mp4"
  uint64_t seed = 0;      // everything random about the clip comes from this
};
std::vector<SynthClipPlan> plan_synth_clips(const SynthOptions& options);

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
RenderedClip render_synth_clip(const SynthOptions& options, const std::string& action,
                               const std::string& object, uint64_t clip_seed);

// The composite class / SSv2 label of an action done to an object: "Moving red ball up",
// "Red ball falling".
std::string synth_composite_name(const std::string& action, const std::string& object);

struct SynthProgress {
  int64_t done = 0, total = 0, rendered = 0, skipped = 0;
};

struct SynthSummary {
  int64_t clips = 0, rendered = 0, skipped = 0, train = 0, validation = 0;
  int64_t actions = 0, objects = 0;
  double seconds = 0;
};

// Writes the dataset under `out`:
//   videos/<id>.webm|.mp4, labels.json train.json validation.json (actions),
//   object/{labels,train,validation}.json, composite/{labels,train,validation}.json, synth.json.
// Clips already present and readable with the expected size and frame count are kept (a rerun
// finishes an interrupted one). A folder made with other rendering options (seed, size, …) is
// refused rather than mixed. Every file is written atomically. `progress` is called after each
// clip (from worker threads, serialised).
SynthSummary write_synth_dataset(const std::string& out, const SynthOptions& options,
                                 const std::function<void(const SynthProgress&)>& progress = {});

}  // namespace vidfuse::data
