// The synthetic something-something generator: every action shows the motion its label claims
// (checked on the rendered frames' object masks), the output is a pure function of the seed (same
// manifests, same decoded pixels), and the three SSv2 label sets agree with each other.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "test_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/synth.h"
#include "vidfuse/io/frame_source.h"

namespace vidfuse::test {
namespace {

using data::RenderedClip;
using data::SynthOptions;
using nlohmann::json;

json read_json(const std::string& path) { return json::parse(read_bytes(path)); }

std::string strip_brackets(std::string s) {
  s.erase(std::remove(s.begin(), s.end(), '['), s.end());
  s.erase(std::remove(s.begin(), s.end(), ']'), s.end());
  return s;
}

torch::Tensor decode_all(const std::string& path) {
  io::SamplingSpec spec;
  spec.kind = io::SamplingSpec::Kind::All;
  io::DecodeOptions d;
  d.threads = 1;
  return io::load_clip(path, spec, d).frames;
}

// File names in a folder, sorted.
std::vector<std::string> fs_list(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

double range(const std::vector<double>& v) {
  return *std::max_element(v.begin(), v.end()) - *std::min_element(v.begin(), v.end());
}

// The rotation (radians, positive = clockwise on screen) that best maps mask a onto mask b about
// their centroids, searched in half-degree steps up to ±29° (below every shape's symmetry angle
// used here, so the answer is unambiguous).
double rotation_step(const torch::Tensor& a, const torch::Tensor& b, double cxa, double cya,
                     double cxb, double cyb) {
  const int64_t H = a.size(0), W = a.size(1);
  auto A = a.accessor<float, 2>();
  auto B = b.accessor<float, 2>();
  double best = 0, best_score = -1;
  for (int k = -58; k <= 58; ++k) {
    const double d = k * 0.5 * M_PI / 180.0, c = std::cos(d), s = std::sin(d);
    int64_t both = 0, either = 0;
    for (int64_t y = 0; y < H; ++y)
      for (int64_t x = 0; x < W; ++x) {
        // Pixel p of b comes from a at ca + R(-d)(p - cb).
        const double dx = x + 0.5 - cxb, dy = y + 0.5 - cyb;
        const double qx = cxa + c * dx + s * dy, qy = cya - s * dx + c * dy;
        const int64_t ix = static_cast<int64_t>(std::floor(qx)),
                      iy = static_cast<int64_t>(std::floor(qy));
        const bool in_a = ix >= 0 && iy >= 0 && ix < W && iy < H && A[iy][ix] > 0.5f;
        const bool in_b = B[y][x] > 0.5f;
        both += in_a && in_b;
        either += in_a || in_b;
      }
    const double score = either ? static_cast<double>(both) / either : 0;
    if (score > best_score) best_score = score, best = d;
  }
  return best;
}

TEST(SynthCatalogue, ParsesCountsAndNamesWithClearErrors) {
  const auto& actions = data::synth_actions();
  ASSERT_EQ(actions.size(), 15u);
  EXPECT_EQ(data::parse_synth_actions("3"),
            (std::vector<std::string>{"left-to-right", "right-to-left", "up"}));
  // Any spelling, returned in catalogue order without repeats.
  EXPECT_EQ(data::parse_synth_actions("fall, Moving [something] up,FALL,rotate_cw"),
            (std::vector<std::string>{"up", "rotate-cw", "fall"}));
  EXPECT_EQ(data::parse_synth_objects("Blue-Box,red_ball"),
            (std::vector<std::string>{"red ball", "blue box"}));
  EXPECT_EQ(data::parse_synth_objects("2").size(), 2u);
  EXPECT_THROW_WITH(data::parse_synth_actions("jumping"), "unknown action 'jumping'",
                    "left-to-right", "rotate-ccw", "static");
  EXPECT_THROW_WITH(data::parse_synth_objects("red cube"), "unknown object 'red cube'", "red ball",
                    "purple ring");
  EXPECT_THROW_WITH(data::parse_synth_actions("16"), "between 1 and 15");
  SynthOptions bad;
  bad.camera_jitter = 3;
  EXPECT_THROW_WITH(data::normalize_synth_options(bad), "camera jitter", "[0, 2]");
  bad = {};
  bad.actions = {"shake-fast"};
  bad.shake_period = 6;
  EXPECT_THROW_WITH(data::normalize_synth_options(bad), "shake-fast", "multiple of 4", "got 6");
  bad = {};
  bad.width = 161;
  EXPECT_THROW_WITH(data::normalize_synth_options(bad), "--size 161x120", "even");
  bad = {};
  bad.format = "avi";
  EXPECT_THROW_WITH(data::normalize_synth_options(bad), "--format 'avi'", "webm, mp4 or both");
  EXPECT_EQ(data::synth_composite_name("left-to-right", "red ball"),
            "Moving red ball from left to right");
  EXPECT_EQ(data::synth_composite_name("fall", "blue box"), "Blue box falling");
}

TEST(SynthPlan, DefaultIsBalancedWithTheRequestedValidationShare) {
  const auto plan = data::plan_synth_clips(SynthOptions{});
  ASSERT_EQ(plan.size(), 300u);
  std::map<std::string, int64_t> actions, objects, val_actions;
  int64_t val = 0;
  for (const auto& c : plan) {
    ++actions[c.action];
    ++objects[c.object];
    if (c.split == "validation") ++val, ++val_actions[c.action];
  }
  EXPECT_EQ(val, 75);  // 0.25 of 300
  ASSERT_EQ(actions.size(), 15u);
  ASSERT_EQ(objects.size(), 8u);
  for (const auto& [a, n] : actions) EXPECT_EQ(n, 20) << a << " " << n;
  for (const auto& [o, n] : objects) EXPECT_TRUE(n >= 36 && n <= 39) << o << " " << n;
  for (const auto& [a, n] : val_actions) EXPECT_TRUE(n >= 4 && n <= 7) << a << " " << n;
}

TEST(SynthRender, EveryActionShowsTheMotionItClaims) {
  SynthOptions o;  // the defaults: 160x120, 30 frames
  const double W = static_cast<double>(o.width), H = static_cast<double>(o.height);
  const int64_t T = o.frames;
  const auto& objects = data::synth_objects();
  // Shapes whose outline shows rotation (a ball or ring only turns its texture).
  const std::vector<std::string> angular = {"blue box", "green triangle", "yellow star",
                                            "orange cross"};
  for (const auto& action : data::synth_actions()) {
    for (uint64_t seed = 0; seed < 4; ++seed) {
      const bool rotating = action.key.rfind("rotate", 0) == 0;
      const std::string object =
          rotating ? angular[seed % angular.size()] : objects[(seed * 3 + 1) % objects.size()];
      SCOPED_TRACE(action.key + " / " + object + " / seed " + std::to_string(seed));
      const RenderedClip c = data::render_synth_clip(o, action.key, object, seed * 7919 + 1);
      ASSERT_EQ(c.frames.sizes(), (std::vector<int64_t>{T, o.height, o.width, 3}));
      ASSERT_EQ(c.coverage.sizes(), (std::vector<int64_t>{T, o.height, o.width}));
      const int64_t L = T - 1;
      // Where the object is in the scene: the centroid without the camera shake.
      std::vector<double> sx(T), sy(T);
      for (int64_t t = 0; t < T; ++t) {
        sx[t] = c.cx[t] - static_cast<double>(c.shake_x[t]);
        sy[t] = c.cy[t] - static_cast<double>(c.shake_y[t]);
        EXPECT_LE(std::abs(c.shake_x[t]) + std::abs(c.shake_y[t]), 4);
      }
      const std::string& k = action.key;
      if (k == "appear" || k == "disappear") {
        const bool appear = k == "appear";
        // Absent for the first (last) 30% of the clip, present at the other end.
        for (int64_t t = 0; t < T * 3 / 10; ++t) EXPECT_EQ(c.area[appear ? t : L - t], 0.0) << t;
        EXPECT_GT(c.area[appear ? L : 0], 50.0);
        // The frames show it: where the object is, pixels differ between the two ends.
        const auto present = c.coverage[appear ? L : 0] > 0.9f;
        const auto diff =
            (c.frames[L].to(torch::kFloat32) - c.frames[0].to(torch::kFloat32)).abs().mean(-1);
        EXPECT_GT(diff.masked_select(present).mean().item<double>(), 15.0);
        continue;
      }
      for (int64_t t = 0; t < T; ++t) ASSERT_GT(c.area[t], 50.0) << "object missing at " << t;
      const double dx = c.cx[L] - c.cx[0], dy = c.cy[L] - c.cy[0];
      if (k == "left-to-right" || k == "right-to-left") {
        EXPECT_GT(k == "left-to-right" ? dx : -dx, 0.2 * W);
        EXPECT_LT(range(sy), 4.0);  // a hand wobbles a little
      } else if (k == "up" || k == "down") {
        EXPECT_GT(k == "down" ? dy : -dy, 0.25 * H);
        EXPECT_LT(range(sx), 4.0);
      } else if (k == "approach") {
        EXPECT_GT(c.area[L], 2.0 * c.area[0]);
      } else if (k == "recede") {
        EXPECT_LT(c.area[L], 0.5 * c.area[0]);
      } else if (k == "fall") {
        // Held, then downwards and accelerating (unlike "down"): while it falls every step is
        // longer than the one before, the last far longer than the first.
        EXPECT_GT(dy, 0.25 * H);
        int64_t s = 0, e = L;
        while (s < L && sy[s + 1] - sy[0] < 0.5) ++s;
        while (e > 0 && sy[L] - sy[e - 1] < 0.5) --e;
        ASSERT_GE(e - s, 6);
        // Step t: from frame t to t + 1; the landing step (e - 1 → e) may be cut short.
        for (int64_t t = s + 1; t <= e - 2; ++t)
          EXPECT_GT(sy[t + 1] - sy[t], sy[t] - sy[t - 1] - 0.3) << t;
        EXPECT_GT(sy[e - 1] - sy[e - 2], 3.0 * (sy[s + 1] - sy[s]));
        EXPECT_LT(range(sx), 0.5);
      } else if (rotating) {
        EXPECT_LT(range(sx), 1.0);
        EXPECT_LT(range(sy), 1.0);
        double total = 0;
        for (int64_t t = 0; t < L; ++t)
          total += rotation_step(c.coverage[t], c.coverage[t + 1], c.cx[t], c.cy[t], c.cx[t + 1],
                                 c.cy[t + 1]);
        const double degrees = total * 180.0 / M_PI;
        if (k == "rotate-cw")
          EXPECT_GT(degrees, 60.0);
        else
          EXPECT_LT(degrees, -60.0);
      } else if (k == "shake-sideways" || k == "shake-up-down" || k == "shake-fast") {
        const bool sideways = k != "shake-up-down";
        const int64_t rest_every = o.shake_period / (k == "shake-fast" ? 4 : 2);
        const std::vector<double>& along = sideways ? sx : sy;
        EXPECT_GT(range(along), 0.1 * std::min(W, H));
        EXPECT_LT(range(sideways ? sy : sx), 0.1);  // anti-aliasing moves the centroid a little
        // At rest every half period from shake_still_frame: sparse frames taken there see no
        // shaking at all.
        for (int64_t t = o.shake_still_frame; t < T; t += rest_every)
          EXPECT_NEAR(along[t], along[o.shake_still_frame], 0.5) << t;
        // ... and between them it moves.
        EXPECT_GT(
            std::abs(along[o.shake_still_frame + rest_every / 2] - along[o.shake_still_frame]),
            0.05 * std::min(W, H));
      } else {
        ASSERT_EQ(k, "static");
        // Only the camera shakes.
        EXPECT_LT(range(sx), 0.01);
        EXPECT_LT(range(sy), 0.01);
        EXPECT_LT(range(c.area), 0.1 * c.area[0]);
      }
    }
  }
}

TEST(SynthRender, AStillObjectSitsWhereAShakingOneRests) {
  // Same clip seed, same draws: the static clip's object is where the shaking clip's object is at
  // its rest frames, so frames sampled there cannot tell the two actions apart by position.
  SynthOptions o;
  o.frames = 16;
  o.camera_jitter = 0;
  for (uint64_t seed = 1; seed <= 6; ++seed) {
    const auto still = data::render_synth_clip(o, "static", "blue box", seed);
    for (const char* shake : {"shake-sideways", "shake-up-down", "shake-fast"}) {
      const auto shaking = data::render_synth_clip(o, shake, "blue box", seed);
      for (int64_t t = o.shake_still_frame; t < o.frames; t += o.shake_period / 2) {
        EXPECT_NEAR(shaking.cx[t], still.cx[t], 0.5) << shake << " seed " << seed << " t " << t;
        EXPECT_NEAR(shaking.cy[t], still.cy[t], 0.5) << shake << " seed " << seed << " t " << t;
      }
    }
  }
}

TEST(SynthRender, CameraJitterZeroKeepsTheCameraStill) {
  SynthOptions o;
  o.frames = 16;
  int64_t moved = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const auto shaky = data::render_synth_clip(o, "static", "red ball", seed);
    for (int64_t t = 0; t < o.frames; ++t) moved += shaky.shake_x[t] != 0 || shaky.shake_y[t] != 0;
  }
  EXPECT_GT(moved, 0);  // the default camera is hand-held
  o.camera_jitter = 0;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const auto still = data::render_synth_clip(o, "static", "red ball", seed);
    for (int64_t t = 0; t < o.frames; ++t) {
      EXPECT_EQ(still.shake_x[t], 0) << t;
      EXPECT_EQ(still.shake_y[t], 0) << t;
    }
    // A static object under a still camera: only sensor noise and flicker change the frames.
    const auto d =
        (still.frames[o.frames - 1].to(torch::kFloat32) - still.frames[0].to(torch::kFloat32))
            .abs()
            .mean();
    EXPECT_LT(d.item<double>(), 12.0);
  }
}

TEST(SynthRender, TheVeilHidesWhichObjectItIs) {
  SynthOptions o;
  o.frames = 32;
  o.veil_begin = 8;
  o.veil_end = 24;
  // Same seed, two objects: identical pixels inside the veil, different outside.
  const auto a = data::render_synth_clip(o, "shake-sideways", "red ball", 5);
  const auto b = data::render_synth_clip(o, "shake-sideways", "blue box", 5);
  for (int64_t t = 0; t < o.frames; ++t) {
    const bool veiled = t >= 8 && t < 24;
    EXPECT_EQ(torch::equal(a.frames[t], b.frames[t]), veiled) << t;
  }
}

TEST(SynthRender, SameSeedSamePixelsOtherSeedOthers) {
  SynthOptions o;
  o.width = 96;
  o.height = 64;
  o.frames = 10;
  const auto a = data::render_synth_clip(o, "fall", "yellow star", 42);
  const auto b = data::render_synth_clip(o, "fall", "yellow star", 42);
  const auto c = data::render_synth_clip(o, "fall", "yellow star", 43);
  EXPECT_TRUE(torch::equal(a.frames, b.frames));
  EXPECT_TRUE(torch::equal(a.coverage, b.coverage));
  EXPECT_FALSE(torch::equal(a.frames, c.frames));
  EXPECT_THROW_WITH(data::render_synth_clip(o, "hover", "yellow star", 1), "unknown action",
                    "appear");
}

const char* kManifests[] = {"labels.json",
                            "train.json",
                            "validation.json",
                            "object/labels.json",
                            "object/train.json",
                            "object/validation.json",
                            "composite/labels.json",
                            "composite/train.json",
                            "composite/validation.json",
                            "synth.json"};

SynthOptions small_options(uint64_t seed) {
  SynthOptions o;
  o.seed = seed;
  o.clips = 10;
  o.width = 64;
  o.height = 48;
  o.frames = 12;
  o.format = "both";
  o.actions = {"left-to-right", "fall", "appear"};
  o.objects = {"red ball", "blue box"};
  o.jobs = 2;
  return o;
}

TEST(SynthDataset, SameSeedSameManifestsAndDecodedFrames) {
  ScratchDir a, b, c;
  data::write_synth_dataset(a.path().string(), small_options(5));
  data::write_synth_dataset(b.path().string(), small_options(5));
  data::write_synth_dataset(c.path().string(), small_options(6));
  bool manifests_differ = false;
  for (const char* m : kManifests) {
    EXPECT_EQ(read_bytes(a / m), read_bytes(b / m)) << m;
    manifests_differ = manifests_differ || read_bytes(a / m) != read_bytes(c / m);
  }
  EXPECT_TRUE(manifests_differ);
  int64_t videos = 0, differ = 0;
  for (const auto& e : fs_list(a / "videos")) {
    const auto fa = decode_all(a / ("videos/" + e));
    EXPECT_TRUE(torch::equal(fa, decode_all(b / ("videos/" + e)))) << e;
    ++videos;
    const std::string other = c / ("videos/" + e);
    if (!std::filesystem::exists(other) || !torch::equal(fa, decode_all(other))) ++differ;
  }
  EXPECT_EQ(videos, 10);
  EXPECT_EQ(differ, videos);
}

TEST(SynthDataset, ThreeConsistentBalancedSsv2LabelSetsAndBothCodecs) {
  ScratchDir dir;
  SynthOptions o;
  o.seed = 3;
  o.width = 48;
  o.height = 32;
  o.frames = 8;
  o.format = "both";
  o.objects = {"red ball", "green triangle"};
  o.actions = data::parse_synth_actions("12");
  o.clips = 2 * 12 * 2;  // two rounds over the 24 composite classes
  o.val_fraction = 0.5;  // the first round: one clip of every composite class
  o.jobs = 2;
  const auto summary = data::write_synth_dataset(dir.path().string(), o);
  EXPECT_EQ(summary.clips, 48);
  EXPECT_EQ(summary.rendered, 48);
  EXPECT_EQ(summary.validation, 24);
  EXPECT_EQ(summary.train, 24);

  const json meta = read_json(dir / "synth.json");
  std::map<std::string, json> by_id;
  for (const auto& v : meta["videos"]) by_id[v["id"].get<std::string>()] = v;
  ASSERT_EQ(by_id.size(), 48u);

  struct Set {
    std::string dir;
    size_t classes;
  };
  std::map<std::string, std::map<std::string, std::string>> class_of;  // set → id → class
  for (const Set& set : {Set{"", 12}, Set{"object/", 2}, Set{"composite/", 24}}) {
    SCOPED_TRACE("label set '" + set.dir + "'");
    const json labels = read_json(dir / (set.dir + "labels.json"));
    ASSERT_EQ(labels.size(), set.classes);
    // Indices 0..n-1 in sorted class order.
    int64_t expected = 0;
    for (auto it = labels.begin(); it != labels.end(); ++it)
      EXPECT_EQ(it.value().get<std::string>(), std::to_string(expected++)) << it.key();
    std::map<std::string, int64_t> per_class;
    std::set<std::string> val_classes;
    for (const char* split : {"train", "validation"}) {
      for (const auto& e : read_json(dir / (set.dir + split + ".json"))) {
        const std::string id = e["id"], tmpl = e["template"], label = e["label"];
        // SSv2: the class is labels[template without brackets]; the label fills the template.
        const std::string cls = strip_brackets(tmpl);
        ASSERT_TRUE(labels.contains(cls)) << cls;
        ++per_class[cls];
        class_of[set.dir][id] = cls;
        const json& v = by_id.at(id);
        EXPECT_EQ(v["split"].get<std::string>(), split);
        const std::string action = v["action"], object = v["object"];
        if (set.dir.empty()) {
          ASSERT_EQ(e["placeholders"].size(), 1u);
          EXPECT_EQ(e["placeholders"][0].get<std::string>(), object);
          std::string filled = tmpl;
          const auto b = filled.find('['), end = filled.find(']');
          std::string obj = object;
          if (std::isupper(static_cast<unsigned char>(filled[b + 1])))
            obj[0] = std::toupper(obj[0]);
          filled.replace(b, end - b + 1, obj);
          EXPECT_EQ(label, filled);
          for (const auto& a : data::synth_actions())
            if (a.key == action) {
              EXPECT_EQ(cls, a.class_name);
            }
        } else {
          EXPECT_EQ(label, cls);
          EXPECT_EQ(cls,
                    set.dir == "object/" ? object : data::synth_composite_name(action, object));
        }
        if (std::string(split) == "validation") val_classes.insert(cls);
      }
    }
    // Balanced: every class the same number of clips; validation sees every composite class.
    ASSERT_EQ(per_class.size(), set.classes);
    for (const auto& [cls, n] : per_class)
      EXPECT_EQ(n, 48 / static_cast<int64_t>(set.classes)) << cls;
    EXPECT_EQ(val_classes.size(), set.classes);
  }
  // Composite = action × object, clip by clip.
  for (const auto& [id, composite] : class_of["composite/"]) {
    const json& v = by_id.at(id);
    EXPECT_EQ(composite, data::synth_composite_name(v["action"].get<std::string>(),
                                                    v["object"].get<std::string>()));
    EXPECT_EQ(class_of["object/"][id], v["object"].get<std::string>());
  }

  // Both codecs, half the clips each, every file decodable at the requested size and length.
  std::map<std::string, int64_t> codecs;
  for (const auto& [id, v] : by_id) {
    const std::string path = dir / v["file"].get<std::string>();
    auto source = io::open_frame_source(path);
    const bool webm = path.size() > 5 && path.substr(path.size() - 5) == ".webm";
    EXPECT_EQ(source->info().codec, webm ? "vp9" : "h264") << path;
    ++codecs[source->info().codec];
    const auto frames = decode_all(path);
    EXPECT_EQ(frames.sizes(), (std::vector<int64_t>{8, 32, 48, 3})) << path;
  }
  EXPECT_EQ(codecs["vp9"], 24);
  EXPECT_EQ(codecs["h264"], 24);
}

TEST(SynthDataset, RerunKeepsValidClipsRedoesBrokenOnesRefusesOtherOptions) {
  ScratchDir dir;
  SynthOptions o = small_options(9);
  o.clips = 6;
  o.format = "webm";
  auto s = data::write_synth_dataset(dir.path().string(), o);
  EXPECT_EQ(s.rendered, 6);
  const std::string manifest = read_bytes(dir / "train.json");
  s = data::write_synth_dataset(dir.path().string(), o);
  EXPECT_EQ(s.rendered, 0);
  EXPECT_EQ(s.skipped, 6);
  EXPECT_EQ(read_bytes(dir / "train.json"), manifest);
  // A truncated video is rendered again; more clips extend the dataset.
  std::filesystem::resize_file(dir / "videos/2.webm", 100);
  o.clips = 8;
  s = data::write_synth_dataset(dir.path().string(), o);
  EXPECT_EQ(s.rendered, 3);
  EXPECT_EQ(s.skipped, 5);
  EXPECT_EQ(decode_all(dir / "videos/2.webm").size(0), 12);
  // Other pixels under the same ids would silently mix two datasets: refused, naming the change.
  o.seed = 10;
  EXPECT_THROW_WITH(data::write_synth_dataset(dir.path().string(), o), "synth.json",
                    "other options", "seed 9");
}

}  // namespace
}  // namespace vidfuse::test
