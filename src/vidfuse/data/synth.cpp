#include "vidfuse/data/synth.h"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/sampling.h"
#include "vidfuse/io/video_writer.h"

namespace vidfuse::data {

namespace {

namespace fs = std::filesystem;
using io::SampleRng;
using nlohmann::json;

// Bump when the renderer changes what a seed draws: synth.json records it, and a rerun into a
// folder made by another version is refused instead of mixing two looks in one dataset.
constexpr int kRendererVersion = 2;  // 2: a still object is placed as a shaking one
constexpr double kPi = 3.14159265358979323846;

enum class Motion {
  LeftToRight,
  RightToLeft,
  Up,
  Down,
  Approach,
  Recede,
  RotateCw,
  RotateCcw,
  Appear,
  Disappear,
  Fall,
  Static,
  ShakeSideways,
  ShakeUpDown,
  ShakeFast
};

struct ActionDef {
  const char* key;
  const char* tmpl;
  Motion motion;
};

const ActionDef kActions[] = {
    {"left-to-right", "Moving [something] from left to right", Motion::LeftToRight},
    {"right-to-left", "Moving [something] from right to left", Motion::RightToLeft},
    {"up", "Moving [something] up", Motion::Up},
    {"down", "Moving [something] down", Motion::Down},
    {"approach", "Pushing [something] so that it approaches the camera", Motion::Approach},
    {"recede", "Pushing [something] so that it recedes from the camera", Motion::Recede},
    {"rotate-cw", "Rotating [something] clockwise", Motion::RotateCw},
    {"rotate-ccw", "Rotating [something] counterclockwise", Motion::RotateCcw},
    {"appear", "[Something] appearing", Motion::Appear},
    {"disappear", "[Something] disappearing", Motion::Disappear},
    {"fall", "[Something] falling", Motion::Fall},
    {"static", "Showing [something] that is not moving", Motion::Static},
    // Fast oscillations that pass the rest position every half period: sampled at those instants
    // (SynthOptions::shake_still_frame) the object looks still, so only a dense-frame stream sees
    // them.
    {"shake-sideways", "Shaking [something] from side to side", Motion::ShakeSideways},
    {"shake-up-down", "Shaking [something] up and down", Motion::ShakeUpDown},
    // Sideways at half the period: at rest on the same frames, twice as fast in between.
    {"shake-fast", "Shaking [something] quickly", Motion::ShakeFast},
};

enum class Shape { Ball, Box, Triangle, Star, Ring, Cross, Diamond, Hexagon };

struct ObjectDef {
  const char* name;
  Shape shape;
  float rgb[3];  // the colour family's centre; each clip varies the shade around it
};

const ObjectDef kObjects[] = {
    {"red ball", Shape::Ball, {215, 40, 40}},
    {"blue box", Shape::Box, {45, 85, 215}},
    {"green triangle", Shape::Triangle, {45, 175, 65}},
    {"yellow star", Shape::Star, {235, 205, 40}},
    {"purple ring", Shape::Ring, {150, 60, 195}},
    {"orange cross", Shape::Cross, {240, 135, 30}},
    {"cyan diamond", Shape::Diamond, {40, 195, 205}},
    {"pink hexagon", Shape::Hexagon, {240, 110, 175}},
};

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

const ActionDef& action_def(const std::string& key) {
  for (const auto& a : kActions)
    if (key == a.key) return a;
  std::string valid;
  for (const auto& a : kActions) valid += std::string(valid.empty() ? "" : ", ") + a.key;
  throw Error("synth: unknown action '" + key + "'; valid actions: " + valid);
}

const ObjectDef& object_def(const std::string& name) {
  for (const auto& o : kObjects)
    if (name == o.name) return o;
  std::string valid;
  for (const auto& o : kObjects) valid += std::string(valid.empty() ? "" : ", ") + o.name;
  throw Error("synth: unknown object '" + name + "'; valid objects: " + valid);
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

// ---------------------------------------------------------------------------------------------
// Rendering

float clampf(float v, float lo, float hi) { return std::min(hi, std::max(lo, v)); }
float smoothstep(float t) { return t * t * (3.f - 2.f * t); }

// Inside test for a shape of bounding radius 1 centred at the origin (u right, v down).
bool inside_shape(Shape s, float u, float v) {
  switch (s) {
    case Shape::Ball:
      return u * u + v * v <= 1.f;
    case Shape::Box:
      return std::fabs(u) <= 0.72f && std::fabs(v) <= 0.72f;
    case Shape::Triangle:  // equilateral, circumradius 1, a vertex up; inradius 0.5
      return v <= 0.5f && -0.8660254f * u - 0.5f * v <= 0.5f && 0.8660254f * u - 0.5f * v <= 0.5f;
    case Shape::Star: {  // five points, straight edges, inner radius 0.45
      const float rho2 = u * u + v * v;
      if (rho2 > 1.f) return false;
      const float sector = 2.f * static_cast<float>(kPi) / 5.f;
      float a = std::atan2(v, u) + static_cast<float>(kPi) / 2.f;  // a point straight up
      a = std::fmod(a + 4.f * static_cast<float>(kPi), sector);
      a = std::min(a, sector - a);  // 0 at a tip, sector/2 at an inner corner
      const float rho = std::sqrt(rho2);
      const float px = rho * std::cos(a), py = rho * std::sin(a);
      const float ix = 0.45f * std::cos(sector / 2.f), iy = 0.45f * std::sin(sector / 2.f);
      const float dx = ix - 1.f, dy = iy;
      return dx * py - dy * (px - 1.f) >= 0.f;  // same side of the tip→inner edge as the centre
    }
    case Shape::Ring: {
      const float rho2 = u * u + v * v;
      return rho2 <= 1.f && rho2 >= 0.55f * 0.55f;
    }
    case Shape::Cross:
      return (std::fabs(u) <= 0.3f && std::fabs(v) <= 0.9f) ||
             (std::fabs(v) <= 0.3f && std::fabs(u) <= 0.9f);
    case Shape::Diamond:
      return std::fabs(u) + std::fabs(v) <= 1.f;
    case Shape::Hexagon: {
      const float au = std::fabs(u), av = std::fabs(v);
      return av <= 0.8660254f && 0.8660254f * au + 0.5f * av <= 0.8660254f;
    }
  }
  return false;
}

// Per-clip appearance of the object. The texture lives in object coordinates, so it turns with
// the object and makes rotation visible even on round shapes.
struct ObjectLook {
  Shape shape;
  float rgb[3];
  int texture;  // 0 plain with a highlight spot, 1 stripes, 2 two-tone halves
  float stripe_freq;
};

void shade(const ObjectLook& look, float u, float v, float out[3]) {
  float mul = 1.f - 0.12f * v;  // light from above
  float add = 0.f;
  switch (look.texture) {
    case 0: {
      const float du = u - 0.35f, dv = v + 0.35f;
      if (du * du + dv * dv < 0.09f) {
        mul *= 0.6f;
        add = 100.f;
      }
      break;
    }
    case 1:
      if (std::fmod(u * look.stripe_freq + 64.f, 2.f) < 1.f) mul *= 0.6f;
      break;
    default:
      if (u > 0.f) mul *= 0.65f;
      break;
  }
  for (int c = 0; c < 3; ++c) out[c] = look.rgb[c] * mul + add;
}

// A background drawn once per clip on a canvas a few pixels larger than the frame, so camera
// jitter can shift it.
std::vector<float> make_background(SampleRng& rng, int64_t cw, int64_t ch) {
  float c1[3], c2[3];
  const float g1 = static_cast<float>(rng.uniform_real(50, 190));
  const float g2 =
      clampf(g1 + static_cast<float>(rng.uniform_real(30, 70)) * (rng.uniform_int(2) ? 1.f : -1.f),
             20, 235);
  for (int c = 0; c < 3; ++c) {
    c1[c] = clampf(g1 + static_cast<float>(rng.uniform_real(-25, 25)), 0, 255);
    c2[c] = clampf(g2 + static_cast<float>(rng.uniform_real(-25, 25)), 0, 255);
  }
  const int kind = static_cast<int>(rng.uniform_int(5));
  const double angle = rng.uniform_real(0, kPi);
  const float ca = static_cast<float>(std::cos(angle)), sa = static_cast<float>(std::sin(angle));
  const float period = static_cast<float>(rng.uniform_real(8, 26));
  const float cell = static_cast<float>(rng.uniform_real(12, 36));
  const float ox = static_cast<float>(rng.uniform_real(0, cw)),
              oy = static_cast<float>(rng.uniform_real(0, ch));
  // Value-noise lattice (drawn whatever the kind, so the draw order never depends on it).
  const int64_t gw = static_cast<int64_t>(cw / 12) + 3, gh = static_cast<int64_t>(ch / 12) + 3;
  std::vector<float> lattice(gw * gh);
  for (auto& l : lattice) l = static_cast<float>(rng.uniform_real(0, 1));

  std::vector<float> bg(cw * ch * 3);
  const float diag = std::sqrt(static_cast<float>(cw * cw + ch * ch));
  for (int64_t y = 0; y < ch; ++y) {
    for (int64_t x = 0; x < cw; ++x) {
      const float fx = static_cast<float>(x) + 0.5f, fy = static_cast<float>(y) + 0.5f;
      float t = 0.f;
      switch (kind) {
        case 0:  // linear gradient
          t = clampf(0.5f + ((fx - cw / 2.f) * ca + (fy - ch / 2.f) * sa) / diag, 0, 1);
          break;
        case 1: {  // radial gradient around a random point
          const float dx = fx - ox, dy = fy - oy;
          t = clampf(std::sqrt(dx * dx + dy * dy) / diag * 1.5f, 0, 1);
          break;
        }
        case 2:  // soft stripes
          t = 0.5f + 0.5f * std::sin(2.f * static_cast<float>(kPi) * (fx * ca + fy * sa) / period);
          break;
        case 3: {                                      // smooth value noise
          const float gx = fx / cell, gy = fy / cell;  // cell >= 12: inside the lattice
          const int64_t ix = std::min<int64_t>(static_cast<int64_t>(gx), gw - 2);
          const int64_t iy = std::min<int64_t>(static_cast<int64_t>(gy), gh - 2);
          const float tx = smoothstep(clampf(gx - static_cast<float>(ix), 0, 1));
          const float ty = smoothstep(clampf(gy - static_cast<float>(iy), 0, 1));
          const float a = lattice[iy * gw + ix], b = lattice[iy * gw + ix + 1];
          const float c = lattice[(iy + 1) * gw + ix], d = lattice[(iy + 1) * gw + ix + 1];
          t = (a * (1 - tx) + b * tx) * (1 - ty) + (c * (1 - tx) + d * tx) * ty;
          break;
        }
        default: {  // checkerboard, low contrast
          const int64_t qx = static_cast<int64_t>(std::floor(fx / cell));
          const int64_t qy = static_cast<int64_t>(std::floor(fy / cell));
          t = ((qx + qy) & 1) ? 0.7f : 0.3f;
          break;
        }
      }
      float* p = &bg[(y * cw + x) * 3];
      for (int c = 0; c < 3; ++c) p[c] = c1[c] * (1.f - t) + c2[c] * t;
    }
  }
  return bg;
}

// The object's pose in one frame (before camera jitter).
struct Pose {
  float cx = 0, cy = 0, scale = 1, theta = 0, alpha = 1;
};

// Progress through the motion at frame t: 0 before `t0`, 1 after `t1`, linear or eased between
// (hands start and stop smoothly more or less).
float progress(float t, float t0, float t1, float ease) {
  const float lin = clampf((t - t0) / std::max(1e-3f, t1 - t0), 0, 1);
  return lin * (1 - ease) + smoothstep(lin) * ease;
}

std::vector<Pose> trajectory(Motion motion, SampleRng& rng, float W, float H, int64_t T,
                             float radius, const SynthOptions& o) {
  const float last = static_cast<float>(T - 1);
  auto U = [&](double lo, double hi) { return static_cast<float>(rng.uniform_real(lo, hi)); };
  // Drawn in a fixed order for every action, so a clip's look does not depend on which parameters
  // its action happens to use.
  const float t0 = U(0, 0.2) * last, t1 = U(0.8, 1.0) * last, ease = U(0, 1);
  const float wobble_amp = U(0, 1.8), wobble_freq = U(0.5, 1.5), wobble_phase = U(0, 2 * kPi);
  const float theta0 = U(0, 2 * kPi), travel = U(0.3, 0.55), place = U(0, 1), across = U(0, 1);
  const float big = U(1.6, 2.2), turn = U(0.5 * kPi, 1.2 * kPi), drift = U(-0.05, 0.05);
  const float t_event = U(0.3, 0.6) * last, spin = U(-0.5, 0.5), land = U(0.75, 0.95) * last;
  const float release = U(0.05, 0.3) * last;

  const float m = radius + 3.f;  // keep the whole object in the frame, jitter included
  auto span = [&](float extent, float d, float where) {  // start in [m, extent - m - d]
    return m + where * std::max(0.f, extent - 2 * m - d);
  };
  auto centre_in = [&](float extent, float r, float where) {
    return r + 3.f + where * std::max(0.f, extent - 2 * (r + 3.f));
  };

  std::vector<Pose> poses(T);
  for (int64_t i = 0; i < T; ++i) {
    const float t = static_cast<float>(i);
    Pose p;
    p.theta = theta0;
    const float wob = wobble_amp * std::sin(2.f * static_cast<float>(kPi) * wobble_freq * t / last +
                                            wobble_phase);
    const float q = progress(t, t0, t1, ease);
    switch (motion) {
      case Motion::LeftToRight:
      case Motion::RightToLeft: {
        const float d = std::min(travel * W, W - 2 * m);
        const float start = span(W, d, place);
        const float f = motion == Motion::LeftToRight ? q : 1 - q;
        p.cx = start + f * d;
        p.cy = centre_in(H, radius, across) + wob;
        break;
      }
      case Motion::Up:
      case Motion::Down: {
        const float d = std::min(travel * H * 1.3f, H - 2 * m);
        const float start = span(H, d, place);
        const float f = motion == Motion::Down ? q : 1 - q;
        p.cy = start + f * d;
        p.cx = centre_in(W, radius, across) + wob;
        break;
      }
      case Motion::Approach:
      case Motion::Recede: {
        const float r_max = radius * big;
        p.scale = motion == Motion::Approach ? 1 + (big - 1) * q : big - (big - 1) * q;
        p.cx = centre_in(W, r_max, 0.3f + 0.4f * place) + drift * W * q;
        p.cy = centre_in(H, r_max, 0.3f + 0.4f * across) + wob * 0.5f;
        break;
      }
      case Motion::RotateCw:
      case Motion::RotateCcw:
        // Image y points down, so a growing angle turns the object clockwise on screen.
        p.theta = theta0 + (motion == Motion::RotateCw ? 1.f : -1.f) * turn * q;
        p.cx = centre_in(W, radius, place);
        p.cy = centre_in(H, radius, across);
        break;
      case Motion::Appear:
      case Motion::Disappear: {
        // A quick fade over three frames: absent before, fully there after (or the reverse).
        const float f = clampf((t - t_event) / 3.f, 0, 1);
        p.alpha = motion == Motion::Appear ? f : 1 - f;
        p.cx = centre_in(W, radius, place);
        p.cy = centre_in(H, radius, across);
        break;
      }
      case Motion::Fall: {
        // Held, let go, accelerating (y ∝ t²) until it lands at the bottom and rests there.
        const float y0 = m + 0.3f * place * (H - 2 * m);
        const float y1 = H - radius - 2.f;
        const float g = clampf((t - release) / std::max(1.f, land - release), 0, 1);
        p.cy = y0 + (y1 - y0) * g * g;
        p.cx = centre_in(W, radius, across);
        p.theta = theta0 + spin * g;
        break;
      }
      case Motion::Static:
      case Motion::ShakeSideways:
      case Motion::ShakeUpDown:
      case Motion::ShakeFast: {
        // A still object is placed as a shaking one is (inside the swing's margin), so where it
        // sits does not tell it from one shaking: at the shakes' rest frames the two look alike.
        const float amp = travel * 0.5f * std::min(W, H);
        p.cx = centre_in(W, radius + amp, place);
        p.cy = centre_in(H, radius + amp, across);
        if (motion == Motion::Static) break;
        const float period =
            static_cast<float>(o.shake_period) * (motion == Motion::ShakeFast ? 0.5f : 1.f);
        const float swing = amp * std::sin(2.f * static_cast<float>(kPi) *
                                           (t - static_cast<float>(o.shake_still_frame)) / period);
        (motion == Motion::ShakeUpDown ? p.cy : p.cx) += swing;
        break;
      }
    }
    poses[i] = p;
  }
  return poses;
}

uint64_t clip_seed(uint64_t seed, int64_t index) {
  SampleRng r(seed * 0xD1B54A32D192ED03ull + static_cast<uint64_t>(index) * 0x9E3779B97F4A7C15ull +
              0x632BE59BD9B4E019ull);
  r.next();
  return r.next();
}

std::string format_size(int64_t w, int64_t h) {
  return std::to_string(w) + "x" + std::to_string(h);
}

// The options a video's pixels depend on: a rerun with other values must not reuse the files.
json render_key(const SynthOptions& o) {
  json key{{"renderer_version", kRendererVersion},
           {"seed", o.seed},
           {"size", format_size(o.width, o.height)},
           {"fps", o.fps},
           {"frames", o.frames},
           {"actions", o.actions},
           {"objects", o.objects},
           {"format", o.format}};
  // Only when they can matter, so folders made before these options existed stay valid.
  const SynthOptions d;
  if (o.shake_period != d.shake_period || o.shake_still_frame != d.shake_still_frame)
    key["shake"] = {o.shake_period, o.shake_still_frame};
  if (o.veil_end > o.veil_begin) key["veil"] = {o.veil_begin, o.veil_end};
  if (o.camera_jitter != d.camera_jitter) key["camera_jitter"] = o.camera_jitter;
  return key;
}

bool existing_clip_ok(const std::string& path, const SynthOptions& o) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return false;
  try {
    io::DecodeOptions d;
    d.threads = 1;
    auto source = io::open_frame_source(path, d);
    const auto& table = source->frames();
    const auto& info = source->info();
    return table.size() == o.frames && info.width == o.width && info.height == o.height;
  } catch (const std::exception&) {
    return false;  // unreadable or truncated: render it again
  }
}

json ssv2_entry(const std::string& id, const std::string& tmpl,
                const std::vector<std::string>& placeholders) {
  // SSv2: "label" is the template with the placeholders filled in.
  std::string label;
  size_t k = 0;
  for (size_t i = 0; i < tmpl.size(); ++i) {
    if (tmpl[i] == '[') {
      const size_t end = tmpl.find(']', i);
      std::string fill =
          k < placeholders.size() ? placeholders[k++] : tmpl.substr(i + 1, end - i - 1);
      if (std::isupper(static_cast<unsigned char>(tmpl[i + 1])) && !fill.empty())
        fill[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(fill[0])));
      label += fill;
      i = end;
    } else {
      label += tmpl[i];
    }
  }
  return json{{"id", id}, {"label", label}, {"template", tmpl}, {"placeholders", placeholders}};
}

// One SSv2 label set: labels.json (class → index string, classes sorted) and the two splits.
void write_label_set(const fs::path& dir, const std::vector<std::string>& classes,
                     const std::vector<SynthClipPlan>& plan,
                     const std::function<json(const SynthClipPlan&)>& entry) {
  std::vector<std::string> sorted = classes;
  std::sort(sorted.begin(), sorted.end());
  json labels = json::object();
  for (size_t i = 0; i < sorted.size(); ++i) labels[sorted[i]] = std::to_string(i);
  json train = json::array(), validation = json::array();
  for (const auto& c : plan) (c.split == "train" ? train : validation).push_back(entry(c));
  write_text_atomically((dir / "labels.json").string(), labels.dump(2) + "\n");
  write_text_atomically((dir / "train.json").string(), train.dump(1) + "\n");
  write_text_atomically((dir / "validation.json").string(), validation.dump(1) + "\n");
}

}  // namespace

// ---------------------------------------------------------------------------------------------

const std::vector<SynthAction>& synth_actions() {
  static const std::vector<SynthAction> all = [] {
    std::vector<SynthAction> v;
    for (const auto& a : kActions) v.push_back({a.key, a.tmpl, ssv2_label_of_template(a.tmpl)});
    return v;
  }();
  return all;
}

const std::vector<std::string>& synth_objects() {
  static const std::vector<std::string> all = [] {
    std::vector<std::string> v;
    for (const auto& o : kObjects) v.push_back(o.name);
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

SynthOptions normalize_synth_options(SynthOptions o) {
  if (o.clips < 1) throw Error("synth: --clips must be at least 1, got " + std::to_string(o.clips));
  if (o.width < 32 || o.height < 32 || o.width > 4096 || o.height > 4096 || o.width % 2 ||
      o.height % 2)
    throw Error("synth: --size " + format_size(o.width, o.height) +
                ": width and height must be even and between 32 and 4096");
  if (o.frames < 8 || o.frames > 10000)
    throw Error("synth: --frames must be between 8 and 10000, got " + std::to_string(o.frames));
  if (!(o.fps > 0 && o.fps <= 240))
    throw Error("synth: --fps must be in (0, 240], got " + std::to_string(o.fps));
  if (!(o.val_fraction >= 0 && o.val_fraction < 1))
    throw Error("synth: --val-fraction must be in [0, 1), got " + std::to_string(o.val_fraction));
  if (o.shake_period < 2)
    throw Error("synth: the shake period must be at least 2 frames, got " +
                std::to_string(o.shake_period));
  if (o.veil_begin < 0 || o.veil_end < 0) throw Error("synth: the veil's frames must be >= 0");
  if (!(o.camera_jitter >= 0 && o.camera_jitter <= 2))
    throw Error("synth: the camera jitter must be in [0, 2] pixels, got " +
                std::to_string(o.camera_jitter));
  if (o.format != "webm" && o.format != "mp4" && o.format != "both")
    throw Error("synth: --format '" + o.format + "': webm, mp4 or both");
  auto join = [](const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : ",") + x;
    return s;
  };
  o.actions = o.actions.empty() ? parse_synth_actions(std::to_string(synth_actions().size()))
                                : parse_synth_actions(join(o.actions));
  o.objects = o.objects.empty() ? parse_synth_objects(std::to_string(synth_objects().size()))
                                : parse_synth_objects(join(o.objects));
  if (std::find(o.actions.begin(), o.actions.end(), "shake-fast") != o.actions.end() &&
      o.shake_period % 4 != 0)
    throw Error(
        "synth: shake-fast rests every quarter of the shake period, so the period must be "
        "a multiple of 4 frames, got " +
        std::to_string(o.shake_period));
  return o;
}

std::string synth_composite_name(const std::string& action, const std::string& object) {
  object_def(object);
  return ssv2_entry("", action_def(action).tmpl, {object})["label"].get<std::string>();
}

std::vector<SynthClipPlan> plan_synth_clips(const SynthOptions& options) {
  const SynthOptions o = normalize_synth_options(options);
  const int64_t A = static_cast<int64_t>(o.actions.size());
  const int64_t O = static_cast<int64_t>(o.objects.size());
  const int64_t K = A * O;
  // Seed-dependent orders of the actions and objects, so the id → class pattern differs by seed.
  SampleRng rng(o.seed ^ 0xA0761D6478BD642Full);
  std::vector<int64_t> pa(A), po(O);
  for (int64_t i = 0; i < A; ++i) pa[i] = i;
  for (int64_t i = 0; i < O; ++i) po[i] = i;
  for (int64_t i = A - 1; i > 0; --i) std::swap(pa[i], pa[rng.uniform_int(i + 1)]);
  for (int64_t i = O - 1; i > 0; --i) std::swap(po[i], po[rng.uniform_int(i + 1)]);

  // Clips per composite class, for the per-class split.
  std::vector<int64_t> count(K, 0);
  for (int64_t i = 0; i < o.clips; ++i) ++count[i % K];

  int64_t val_left =
      static_cast<int64_t>(std::floor(static_cast<double>(o.clips) * o.val_fraction + 0.5));
  std::vector<SynthClipPlan> plan(o.clips);
  for (int64_t i = 0; i < o.clips; ++i) {
    const int64_t j = i % K, round = i / K;
    // A Latin-square walk: within a round, each block of A consecutive clips has every action
    // once, and the object shifts by one per block, so (a, o) covers all K pairs once per round
    // and a partial round stays nearly balanced over objects too.
    const int64_t a = j % A, b = j / A;
    const int64_t obj = (a + b) % O;
    SynthClipPlan& c = plan[i];
    c.index = i;
    c.id = std::to_string(i + 1);
    c.action = o.actions[pa[a]];
    c.object = o.objects[po[obj]];
    // Validation takes the first round(N · fraction) clips: whole rounds first, so it covers
    // every composite class once it has K clips, and a partial round is a balanced prefix. A
    // class's last clip always stays in train.
    const bool val = val_left > 0 && round < count[j] - 1;
    val_left -= val;
    c.split = val ? "validation" : "train";
    // "both": alternate codecs within a round and from round to round, so every class gets both.
    c.extension = o.format == "both" ? ((j + round) % 2 == 0 ? "webm" : "mp4") : o.format;
    c.seed = clip_seed(o.seed, i);
  }
  return plan;
}

RenderedClip render_synth_clip(const SynthOptions& options, const std::string& action,
                               const std::string& object, uint64_t seed) {
  const Motion motion = action_def(action).motion;
  const ObjectDef& def = object_def(object);
  const int64_t W = options.width, H = options.height, T = options.frames;
  if (W < 16 || H < 16 || T < 2) throw Error("synth: clip too small to render");
  SampleRng rng(seed);
  auto U = [&](double lo, double hi) { return static_cast<float>(rng.uniform_real(lo, hi)); };

  // Camera jitter shifts the whole scene by whole pixels; the canvas has room for it.
  const int64_t M = 2;
  const int64_t cw = W + 2 * M, ch = H + 2 * M;
  const std::vector<float> bg = make_background(rng, cw, ch);

  ObjectLook look{def.shape, {0, 0, 0}, static_cast<int>(rng.uniform_int(3)), U(2.0, 4.0)};
  const float brightness = U(0.8, 1.12);
  for (int c = 0; c < 3; ++c) look.rgb[c] = clampf(def.rgb[c] * brightness + U(-18, 18), 0, 255);
  const float minside = static_cast<float>(std::min(W, H));
  float radius = minside * U(0.09, 0.16);
  if (motion == Motion::Approach || motion == Motion::Recede) radius *= 0.65f;
  const float jitter = U(0, options.camera_jitter), noise_sigma = U(1, 6), flicker = U(0, 0.03);

  const std::vector<Pose> poses =
      trajectory(motion, rng, static_cast<float>(W), static_cast<float>(H), T, radius, options);
  // Inside the veil the object is a plain grey ball: its identity shows only outside it.
  const ObjectLook veiled{Shape::Ball, {200, 200, 200}, 1, 0.f};

  RenderedClip out;
  out.frames = torch::empty({T, H, W, 3}, torch::kUInt8);
  out.coverage = torch::zeros({T, H, W}, torch::kFloat32);
  uint8_t* frames = out.frames.data_ptr<uint8_t>();
  float* coverage = out.coverage.data_ptr<float>();
  std::vector<float> buf(W * H * 3);
  out.shake_x.resize(T);
  out.shake_y.resize(T);
  constexpr int S = 3;  // S×S samples per pixel: anti-aliased edges
  for (int64_t t = 0; t < T; ++t) {
    const int64_t jx = static_cast<int64_t>(std::lround(U(-jitter, jitter)));
    const int64_t jy = static_cast<int64_t>(std::lround(U(-jitter, jitter)));
    const float gain = 1.f + U(-flicker, flicker);
    out.shake_x[t] = jx;
    out.shake_y[t] = jy;
    for (int64_t y = 0; y < H; ++y)
      std::copy_n(&bg[((y + M - jy) * cw + (M - jx)) * 3], W * 3, &buf[y * W * 3]);

    const Pose& p = poses[t];
    const ObjectLook& seen = t >= options.veil_begin && t < options.veil_end ? veiled : look;
    float* cov = coverage + t * H * W;
    if (p.alpha > 0.f) {
      const float R = radius * p.scale;
      const float cx = p.cx + static_cast<float>(jx), cy = p.cy + static_cast<float>(jy);
      const float ct = std::cos(p.theta), st = std::sin(p.theta);
      const int64_t x0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cx - R - 1)));
      const int64_t x1 = std::min<int64_t>(W - 1, static_cast<int64_t>(std::ceil(cx + R + 1)));
      const int64_t y0 = std::max<int64_t>(0, static_cast<int64_t>(std::floor(cy - R - 1)));
      const int64_t y1 = std::min<int64_t>(H - 1, static_cast<int64_t>(std::ceil(cy + R + 1)));
      for (int64_t y = y0; y <= y1; ++y) {
        for (int64_t x = x0; x <= x1; ++x) {
          float sum[3] = {0, 0, 0};
          int hits = 0;
          for (int sy = 0; sy < S; ++sy) {
            for (int sx = 0; sx < S; ++sx) {
              const float dx = static_cast<float>(x) + (sx + 0.5f) / S - cx;
              const float dy = static_cast<float>(y) + (sy + 0.5f) / S - cy;
              // World → object coordinates: undo the rotation by theta, then the size.
              const float u = (ct * dx + st * dy) / R, v = (-st * dx + ct * dy) / R;
              if (!inside_shape(seen.shape, u, v)) continue;
              float col[3];
              shade(seen, u, v, col);
              for (int c = 0; c < 3; ++c) sum[c] += col[c];
              ++hits;
            }
          }
          if (!hits) continue;
          const float a = p.alpha * static_cast<float>(hits) / (S * S);
          float* px = &buf[(y * W + x) * 3];
          for (int c = 0; c < 3; ++c) px[c] = px[c] * (1 - a) + (sum[c] / hits) * a;
          cov[y * W + x] = a;
        }
      }
    }

    // Sensor noise (luminance, roughly Gaussian as the sum of three uniforms) and a little flicker.
    uint8_t* dst = frames + t * H * W * 3;
    for (int64_t k = 0; k < W * H; ++k) {
      const uint64_t r = rng.next();
      const float n = (static_cast<float>(r & 0x1FFFFF) + static_cast<float>((r >> 21) & 0x1FFFFF) +
                       static_cast<float>((r >> 42) & 0x1FFFFF)) /
                          static_cast<float>(0x1FFFFF) -
                      1.5f;
      const float add = n * 2.f * noise_sigma;
      for (int c = 0; c < 3; ++c)
        dst[k * 3 + c] =
            static_cast<uint8_t>(clampf(std::nearbyint(buf[k * 3 + c] * gain + add), 0, 255));
    }
  }

  out.area.resize(T);
  out.cx.resize(T);
  out.cy.resize(T);
  for (int64_t t = 0; t < T; ++t) {
    const float* cov = coverage + t * H * W;
    double s = 0, sx = 0, sy = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        const double a = cov[y * W + x];
        s += a;
        sx += a * (static_cast<double>(x) + 0.5);
        sy += a * (static_cast<double>(y) + 0.5);
      }
    out.area[t] = s;
    out.cx[t] = s > 0 ? sx / s : std::numeric_limits<double>::quiet_NaN();
    out.cy[t] = s > 0 ? sy / s : std::numeric_limits<double>::quiet_NaN();
  }
  return out;
}

SynthSummary write_synth_dataset(const std::string& out_dir, const SynthOptions& options,
                                 const std::function<void(const SynthProgress&)>& progress) {
  const auto start = std::chrono::steady_clock::now();
  const SynthOptions o = normalize_synth_options(options);
  const std::vector<SynthClipPlan> plan = plan_synth_clips(o);
  const fs::path out(out_dir);
  const fs::path videos = out / "videos";
  std::error_code ec;
  for (const fs::path& d : {videos, out / "object", out / "composite"}) {
    fs::create_directories(d, ec);
    if (ec) fail_file(d.string(), "cannot create the folder: " + ec.message());
  }

  // A folder made with other rendering options would mix two datasets under one manifest.
  const fs::path meta_path = out / "synth.json";
  const json key = render_key(o);
  if (fs::exists(meta_path)) {
    json old;
    try {
      std::ifstream in(meta_path);
      old = json::parse(in).at("render");
    } catch (const std::exception& e) {
      fail_file(meta_path.string(), std::string("unreadable (") + e.what() +
                                        "); delete the folder or choose another --out");
    }
    if (old != key) {
      std::string diff;
      for (auto it = key.begin(); it != key.end(); ++it)
        if (!old.contains(it.key()) || old[it.key()] != it.value())
          diff += " " + it.key() + " " + (old.contains(it.key()) ? old[it.key()].dump() : "?") +
                  " → " + it.value().dump() + ";";
      fail_file(meta_path.string(),
                "this folder holds a synthetic dataset made with other options:" + diff +
                    " use another --out or delete the folder");
    }
  }

  SynthProgress state;
  state.total = static_cast<int64_t>(plan.size());
  std::mutex mu;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::exception_ptr error;
  auto worker = [&]() {
    while (!failed) {
      const int64_t i = next++;
      if (i >= static_cast<int64_t>(plan.size())) return;
      const SynthClipPlan& c = plan[i];
      const std::string path = (videos / (c.id + "." + c.extension)).string();
      bool skipped = false;
      try {
        if (existing_clip_ok(path, o)) {
          skipped = true;
        } else {
          const RenderedClip clip = render_synth_clip(o, c.action, c.object, c.seed);
          io::VideoWriterOptions w;
          w.codec = c.extension == "webm" ? "vp9" : "h264";
          w.fps = o.fps;
          w.threads = 1;  // one clip per worker; also keeps the encoded bytes reproducible
          io::write_video(path, clip.frames, w);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(mu);
        if (!error) error = std::current_exception();
        failed = true;
        return;
      }
      std::lock_guard<std::mutex> lock(mu);
      ++state.done;
      ++(skipped ? state.skipped : state.rendered);
      if (progress) progress(state);
    }
  };
  int jobs = o.jobs > 0 ? o.jobs : static_cast<int>(std::thread::hardware_concurrency());
  jobs = std::max(1, std::min<int>(jobs, static_cast<int>(plan.size())));
  std::vector<std::thread> threads;
  for (int k = 1; k < jobs; ++k) threads.emplace_back(worker);
  worker();
  for (auto& th : threads) th.join();
  if (error) std::rethrow_exception(error);

  // Label sets: the classes are the selected ones (all of them, even one without clips, so the
  // class indices only depend on the selection).
  std::vector<std::string> action_classes, composite_classes;
  for (const auto& a : o.actions) {
    action_classes.push_back(ssv2_label_of_template(action_def(a).tmpl));
    for (const auto& obj : o.objects) composite_classes.push_back(synth_composite_name(a, obj));
  }
  write_label_set(out, action_classes, plan, [](const SynthClipPlan& c) {
    return ssv2_entry(c.id, action_def(c.action).tmpl, {c.object});
  });
  write_label_set(out / "object", o.objects, plan,
                  [](const SynthClipPlan& c) { return ssv2_entry(c.id, c.object, {}); });
  write_label_set(out / "composite", composite_classes, plan, [](const SynthClipPlan& c) {
    return ssv2_entry(c.id, synth_composite_name(c.action, c.object), {});
  });

  SynthSummary summary;
  summary.clips = state.total;
  summary.rendered = state.rendered;
  summary.skipped = state.skipped;
  for (const auto& c : plan) ++(c.split == "train" ? summary.train : summary.validation);
  summary.actions = static_cast<int64_t>(o.actions.size());
  summary.objects = static_cast<int64_t>(o.objects.size());

  json clips = json::array();
  for (const auto& c : plan)
    clips.push_back({{"id", c.id},
                     {"file", "videos/" + c.id + "." + c.extension},
                     {"action", c.action},
                     {"object", c.object},
                     {"split", c.split},
                     {"seed", c.seed}});
  json meta = {{"generator", "vidfuse synth"},
               {"render", key},
               {"clips", o.clips},
               {"val_fraction", o.val_fraction},
               {"train", summary.train},
               {"validation", summary.validation},
               {"label_sets",
                {{"action", "labels.json"},
                 {"object", "object/labels.json"},
                 {"composite", "composite/labels.json"}}},
               {"videos", clips}};
  write_text_atomically(meta_path.string(), meta.dump(2) + "\n");
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

}  // namespace vidfuse::data
