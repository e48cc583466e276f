// A procedural "something-something" dataset: short clips of one object doing one action (moving
// left/right/up/down, approaching/receding, rotating, appearing/disappearing, falling, nothing,
// shaking),
// rendered from a seed and written as real encoded videos (VP9 WebM and/or H.264 MP4) with
// manifests in the SSv2 format. Three label sets share one videos folder: the action (the SSv2
// template), the object identity, and the composite action × object, so a model that only sees
// appearance (or only motion) cannot solve the composite task. Everything is a pure function of
// the options: the same seed gives the same manifests and the same pixels on every machine (the
// random numbers come from io::SampleRng, never from <random>'s library-specific distributions).
// The catalogue of actions and objects is data/synth_catalogue.h, the drawing of a clip
// data/synth_render.h; this is the dataset: clip plans, splits, label sets and files.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "vidfuse/data/synth_catalogue.h"
#include "vidfuse/data/synth_render.h"

namespace vidfuse::data {

// The render options (size, frames, shake, veil, camera jitter: data/synth_render.h) and the
// dataset's.
struct SynthOptions : SynthRenderOptions {
  uint64_t seed = 0;
  int64_t clips = 300;
  double val_fraction = 0.25;  // rounded to whole clips; a class's last clip stays in train
  double fps = 12.0;
  std::vector<std::string> actions;  // action keys; empty = all
  std::vector<std::string> objects;  // object names; empty = all
  std::string format = "webm";       // webm (VP9) | mp4 (H.264) | both (half the clips each)
  int jobs = 0;                      // render/encode workers, 0 = one per core; output identical
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
