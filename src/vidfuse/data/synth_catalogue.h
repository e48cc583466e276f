// The synthetic dataset's catalogue (data/synth.h): its actions and its objects, one table row
// each in synth_catalogue.cpp. A row carries everything the rest of the code needs about its entry
// (names, the SSv2 template, how the object moves or what it looks like), so adding an action or
// an object is adding a row.
#pragma once
#include <algorithm>
#include <cstdint>
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

// ---------------------------------------------------------------------------------------------
// What the renderer (data/synth_render.h) reads from the rows.

inline constexpr double kSynthPi = 3.14159265358979323846;
inline float synth_clamp(float v, float lo, float hi) { return std::min(hi, std::max(lo, v)); }

// The object's pose in one frame, in scene pixels (camera jitter comes on top).
struct SynthPose {
  float cx = 0, cy = 0, scale = 1, theta = 0, alpha = 1;
};

// One clip's scene and random draws, as a motion sees them. The renderer draws every field for
// every action in one fixed order, so a clip's look does not depend on which of them its action
// happens to use.
struct SynthMotionScene {
  float W = 0, H = 0;  // frame size (pixels)
  float last = 0;      // index of the last frame
  float radius = 0;    // the object's radius at scale 1
  float m = 0;         // margin that keeps the whole object in the frame, jitter included
  int64_t shake_period = 8, shake_still_frame = 4;  // SynthOptions'
  float t0 = 0, t1 = 0, ease = 0;                   // the motion's start, end and easing
  float theta0 = 0, travel = 0, place = 0, across = 0, big = 0, turn = 0, drift = 0;
  float t_event = 0, spin = 0, land = 0, release = 0;

  // Where a travel of length d starts: in [m, extent - m - d].
  float span(float extent, float d, float where) const;
  // A centre that keeps an object of radius r inside [0, extent].
  float centre_in(float extent, float r, float where) const;
};

// Frame t of a motion: `q` is the progress through it (0 before t0, 1 after t1, eased between),
// `wobble` the hand's tremor across the direction of travel.
struct SynthMotionFrame {
  float t = 0, q = 0, wobble = 0;
};

// Sets the pose of frame `f` (it comes in with theta = theta0, scale 1, alpha 1).
using SynthMotion = void (*)(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p);

struct SynthActionRow {
  const char* key;
  const char* template_text;
  SynthMotion motion;
  float size = 1.f;            // the object's radius is scaled by this (room to grow into)
  int64_t period_divisor = 0;  // > 0: rests every 1/n of the shake period (needs a multiple of n)
};

// Inside test for a shape of bounding radius 1 centred at the origin (u right, v down).
using SynthShape = bool (*)(float u, float v);
bool synth_ball(float u, float v);  // the veil's shape

struct SynthObjectRow {
  const char* name;
  SynthShape shape;
  float rgb[3];  // the colour family's centre; each clip varies the shade around it
};

// The row of an action key / object name; unknown ones throw vidfuse::Error listing the valid
// ones.
const SynthActionRow& synth_action_row(const std::string& key);
const SynthObjectRow& synth_object_row(const std::string& name);

}  // namespace vidfuse::data
