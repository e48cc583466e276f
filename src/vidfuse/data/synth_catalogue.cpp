#include "vidfuse/data/synth_catalogue.h"

#include <cctype>
#include <cmath>
#include <functional>
#include <sstream>

#include "vidfuse/core/error.h"
#include "vidfuse/data/manifest.h"

namespace vidfuse::data {

float SynthMotionScene::span(float extent, float d, float where) const {
  return m + where * std::max(0.f, extent - 2 * m - d);
}

float SynthMotionScene::centre_in(float extent, float r, float where) const {
  return r + 3.f + where * std::max(0.f, extent - 2 * (r + 3.f));
}

namespace {

// ---------------------------------------------------------------------------------------------
// Motions. `along` runs from 0 to 1 in the direction of travel.

void slide_sideways(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p,
                    float along) {
  const float d = std::min(s.travel * s.W, s.W - 2 * s.m);
  const float start = s.span(s.W, d, s.place);
  p.cx = start + along * d;
  p.cy = s.centre_in(s.H, s.radius, s.across) + f.wobble;
}

void slide_vertically(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p,
                      float along) {
  const float d = std::min(s.travel * s.H * 1.3f, s.H - 2 * s.m);
  const float start = s.span(s.H, d, s.place);
  p.cy = start + along * d;
  p.cx = s.centre_in(s.W, s.radius, s.across) + f.wobble;
}

void change_size(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p, bool grow) {
  const float r_max = s.radius * s.big;
  p.scale = grow ? 1 + (s.big - 1) * f.q : s.big - (s.big - 1) * f.q;
  p.cx = s.centre_in(s.W, r_max, 0.3f + 0.4f * s.place) + s.drift * s.W * f.q;
  p.cy = s.centre_in(s.H, r_max, 0.3f + 0.4f * s.across) + f.wobble * 0.5f;
}

// Image y points down, so a growing angle turns the object clockwise on screen.
void rotate(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p, float direction) {
  p.theta = s.theta0 + direction * s.turn * f.q;
  p.cx = s.centre_in(s.W, s.radius, s.place);
  p.cy = s.centre_in(s.H, s.radius, s.across);
}

// A quick fade over three frames: absent before, fully there after (or the reverse).
void fade(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p, bool in) {
  const float k = synth_clamp((f.t - s.t_event) / 3.f, 0, 1);
  p.alpha = in ? k : 1 - k;
  p.cx = s.centre_in(s.W, s.radius, s.place);
  p.cy = s.centre_in(s.H, s.radius, s.across);
}

// Held, let go, accelerating (y ∝ t²) until it lands at the bottom and rests there.
void fall(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p) {
  const float y0 = s.m + 0.3f * s.place * (s.H - 2 * s.m);
  const float y1 = s.H - s.radius - 2.f;
  const float g = synth_clamp((f.t - s.release) / std::max(1.f, s.land - s.release), 0, 1);
  p.cy = y0 + (y1 - y0) * g * g;
  p.cx = s.centre_in(s.W, s.radius, s.across);
  p.theta = s.theta0 + s.spin * g;
}

// A still object is placed as a shaking one is (inside the swing's margin), so where it sits does
// not tell it from one shaking: at the shakes' rest frames the two look alike.
float shake_amplitude(const SynthMotionScene& s) { return s.travel * 0.5f * std::min(s.W, s.H); }

void stay(const SynthMotionScene& s, const SynthMotionFrame&, SynthPose& p) {
  const float amp = shake_amplitude(s);
  p.cx = s.centre_in(s.W, s.radius + amp, s.place);
  p.cy = s.centre_in(s.H, s.radius + amp, s.across);
}

// Oscillates around where `stay` puts it, at rest at shake_still_frame + k * period / 2.
void shake(const SynthMotionScene& s, const SynthMotionFrame& f, SynthPose& p, float period_scale,
           bool vertical) {
  stay(s, f, p);
  const float amp = shake_amplitude(s);
  const float period = static_cast<float>(s.shake_period) * period_scale;
  const float swing = amp * std::sin(2.f * static_cast<float>(kSynthPi) *
                                     (f.t - static_cast<float>(s.shake_still_frame)) / period);
  (vertical ? p.cy : p.cx) += swing;
}

using Scene = SynthMotionScene;
using Frame = SynthMotionFrame;
using Pose = SynthPose;

const SynthActionRow kActionRows[] = {
    {"left-to-right", "Moving [something] from left to right",
     [](const Scene& s, const Frame& f, Pose& p) { slide_sideways(s, f, p, f.q); }},
    {"right-to-left", "Moving [something] from right to left",
     [](const Scene& s, const Frame& f, Pose& p) { slide_sideways(s, f, p, 1 - f.q); }},
    {"up", "Moving [something] up",
     [](const Scene& s, const Frame& f, Pose& p) { slide_vertically(s, f, p, 1 - f.q); }},
    {"down", "Moving [something] down",
     [](const Scene& s, const Frame& f, Pose& p) { slide_vertically(s, f, p, f.q); }},
    {"approach", "Pushing [something] so that it approaches the camera",
     [](const Scene& s, const Frame& f, Pose& p) { change_size(s, f, p, true); }, 0.65f},
    {"recede", "Pushing [something] so that it recedes from the camera",
     [](const Scene& s, const Frame& f, Pose& p) { change_size(s, f, p, false); }, 0.65f},
    {"rotate-cw", "Rotating [something] clockwise",
     [](const Scene& s, const Frame& f, Pose& p) { rotate(s, f, p, 1.f); }},
    {"rotate-ccw", "Rotating [something] counterclockwise",
     [](const Scene& s, const Frame& f, Pose& p) { rotate(s, f, p, -1.f); }},
    {"appear", "[Something] appearing",
     [](const Scene& s, const Frame& f, Pose& p) { fade(s, f, p, true); }},
    {"disappear", "[Something] disappearing",
     [](const Scene& s, const Frame& f, Pose& p) { fade(s, f, p, false); }},
    {"fall", "[Something] falling", fall},
    {"static", "Showing [something] that is not moving", stay},
    // Fast oscillations that pass the rest position every half period: sampled at those instants
    // (SynthOptions::shake_still_frame) the object looks still, so only a dense-frame stream sees
    // them.
    {"shake-sideways", "Shaking [something] from side to side",
     [](const Scene& s, const Frame& f, Pose& p) { shake(s, f, p, 1.f, false); }},
    {"shake-up-down", "Shaking [something] up and down",
     [](const Scene& s, const Frame& f, Pose& p) { shake(s, f, p, 1.f, true); }},
    // Sideways at half the period: at rest on the same frames, twice as fast in between.
    {"shake-fast", "Shaking [something] quickly",
     [](const Scene& s, const Frame& f, Pose& p) { shake(s, f, p, 0.5f, false); }, 1.f, 4},
};

// ---------------------------------------------------------------------------------------------
// Shapes (bounding radius 1, u right, v down) and the objects.

bool box(float u, float v) { return std::fabs(u) <= 0.72f && std::fabs(v) <= 0.72f; }

// Equilateral, circumradius 1, a vertex up; inradius 0.5.
bool triangle(float u, float v) {
  return v <= 0.5f && -0.8660254f * u - 0.5f * v <= 0.5f && 0.8660254f * u - 0.5f * v <= 0.5f;
}

// Five points, straight edges, inner radius 0.45.
bool star(float u, float v) {
  const float rho2 = u * u + v * v;
  if (rho2 > 1.f) return false;
  const float sector = 2.f * static_cast<float>(kSynthPi) / 5.f;
  float a = std::atan2(v, u) + static_cast<float>(kSynthPi) / 2.f;  // a point straight up
  a = std::fmod(a + 4.f * static_cast<float>(kSynthPi), sector);
  a = std::min(a, sector - a);  // 0 at a tip, sector/2 at an inner corner
  const float rho = std::sqrt(rho2);
  const float px = rho * std::cos(a), py = rho * std::sin(a);
  const float ix = 0.45f * std::cos(sector / 2.f), iy = 0.45f * std::sin(sector / 2.f);
  const float dx = ix - 1.f, dy = iy;
  return dx * py - dy * (px - 1.f) >= 0.f;  // same side of the tip→inner edge as the centre
}

bool ring(float u, float v) {
  const float rho2 = u * u + v * v;
  return rho2 <= 1.f && rho2 >= 0.55f * 0.55f;
}

bool cross(float u, float v) {
  return (std::fabs(u) <= 0.3f && std::fabs(v) <= 0.9f) ||
         (std::fabs(v) <= 0.3f && std::fabs(u) <= 0.9f);
}

bool diamond(float u, float v) { return std::fabs(u) + std::fabs(v) <= 1.f; }

bool hexagon(float u, float v) {
  const float au = std::fabs(u), av = std::fabs(v);
  return av <= 0.8660254f && 0.8660254f * au + 0.5f * av <= 0.8660254f;
}

const SynthObjectRow kObjectRows[] = {
    {"red ball", synth_ball, {215, 40, 40}},     {"blue box", box, {45, 85, 215}},
    {"green triangle", triangle, {45, 175, 65}}, {"yellow star", star, {235, 205, 40}},
    {"purple ring", ring, {150, 60, 195}},       {"orange cross", cross, {240, 135, 30}},
    {"cyan diamond", diamond, {40, 195, 205}},   {"pink hexagon", hexagon, {240, 110, 175}},
};

// ---------------------------------------------------------------------------------------------
// Names

// Lower case, brackets dropped, '-' and '_' read as spaces: what users type for a name.
std::string fold_name(const std::string& s) {
  std::string r;
  for (char c : ssv2_label_of_template(s)) {
    if (c == '-' || c == '_') c = ' ';
    r += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  const auto b = r.find_first_not_of(' ');
  const auto e = r.find_last_not_of(' ');
  return b == std::string::npos ? std::string() : r.substr(b, e - b + 1);
}

bool all_digits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Shared by the action and object parsers: "N" or a list, resolved by `match` (which returns the
// catalogue index or -1), returned in catalogue order.
std::vector<std::string> parse_selection(const std::string& spec, const std::string& what,
                                         const std::vector<std::string>& catalogue,
                                         const std::function<int(const std::string&)>& match,
                                         const std::string& valid_list) {
  const int64_t total = static_cast<int64_t>(catalogue.size());
  if (all_digits(spec)) {
    const int64_t n = std::stoll(spec);
    if (n < 1 || n > total)
      throw Error("synth: --" + what + " " + spec + ": between 1 and " + std::to_string(total) +
                  " (" + valid_list + ")");
    return {catalogue.begin(), catalogue.begin() + n};
  }
  std::vector<bool> chosen(catalogue.size(), false);
  std::stringstream ss(spec);
  std::string item;
  bool any = false;
  while (std::getline(ss, item, ',')) {
    if (fold_name(item).empty()) continue;
    const int k = match(item);
    if (k < 0)
      throw Error("synth: unknown " + what.substr(0, what.size() - 1) + " '" + item + "'; valid " +
                  what + ": " + valid_list);
    chosen[k] = any = true;
  }
  if (!any) throw Error("synth: --" + what + " is empty; valid " + what + ": " + valid_list);
  std::vector<std::string> out;
  for (size_t k = 0; k < catalogue.size(); ++k)
    if (chosen[k]) out.push_back(catalogue[k]);
  return out;
}

}  // namespace

bool synth_ball(float u, float v) { return u * u + v * v <= 1.f; }

const SynthActionRow& synth_action_row(const std::string& key) {
  for (const auto& a : kActionRows)
    if (key == a.key) return a;
  std::string valid;
  for (const auto& a : kActionRows) valid += std::string(valid.empty() ? "" : ", ") + a.key;
  throw Error("synth: unknown action '" + key + "'; valid actions: " + valid);
}

const SynthObjectRow& synth_object_row(const std::string& name) {
  for (const auto& o : kObjectRows)
    if (name == o.name) return o;
  std::string valid;
  for (const auto& o : kObjectRows) valid += std::string(valid.empty() ? "" : ", ") + o.name;
  throw Error("synth: unknown object '" + name + "'; valid objects: " + valid);
}

const std::vector<SynthAction>& synth_actions() {
  static const std::vector<SynthAction> all = [] {
    std::vector<SynthAction> v;
    for (const auto& a : kActionRows)
      v.push_back({a.key, a.template_text, ssv2_label_of_template(a.template_text)});
    return v;
  }();
  return all;
}

const std::vector<std::string>& synth_objects() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> v;
    for (const auto& o : kObjectRows) v.push_back(o.name);
    return v;
  }();
  return all;
}

std::vector<std::string> parse_synth_actions(const std::string& spec) {
  std::vector<std::string> keys;
  std::string valid;
  for (const auto& a : synth_actions()) {
    keys.push_back(a.key);
    valid += (valid.empty() ? "" : ", ") + a.key;
  }
  return parse_selection(
      spec, "actions", keys,
      [](const std::string& name) {
        const std::string f = fold_name(name);
        const auto& all = synth_actions();
        for (size_t k = 0; k < all.size(); ++k)
          if (f == fold_name(all[k].key) || f == fold_name(all[k].class_name))
            return static_cast<int>(k);
        return -1;
      },
      valid);
}

std::vector<std::string> parse_synth_objects(const std::string& spec) {
  std::string valid;
  for (const auto& o : synth_objects()) valid += (valid.empty() ? "" : ", ") + o;
  return parse_selection(
      spec, "objects", synth_objects(),
      [](const std::string& name) {
        const std::string f = fold_name(name);
        const auto& all = synth_objects();
        for (size_t k = 0; k < all.size(); ++k)
          if (f == fold_name(all[k])) return static_cast<int>(k);
        return -1;
      },
      valid);
}

}  // namespace vidfuse::data
