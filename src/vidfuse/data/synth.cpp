#include "vidfuse/data/synth.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <exception>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/thread_pool.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/sampling.h"
#include "vidfuse/io/video_writer.h"

namespace vidfuse::data {

namespace {

namespace fs = std::filesystem;
using io::SampleRng;
using nlohmann::json;

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
  json key{{"renderer_version", kSynthRendererVersion},
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
  for (const auto& key : o.actions) {
    const int64_t n = synth_action_row(key).period_divisor;
    if (n > 0 && o.shake_period % n != 0)
      throw Error("synth: " + key + " rests every 1/" + std::to_string(n) +
                  " of the shake period, so the period must be a multiple of " + std::to_string(n) +
                  " frames, got " + std::to_string(o.shake_period));
  }
  return o;
}

std::string synth_composite_name(const std::string& action, const std::string& object) {
  synth_object_row(object);  // validates the name
  return ssv2_entry("", synth_action_row(action).template_text, {object})["label"]
      .get<std::string>();
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
    const json meta = read_json_file(meta_path.string(), "synthetic dataset's description");
    if (!meta.contains("render"))
      fail_file(meta_path.string(),
                "no \"render\" entry; delete the folder or choose another --out");
    const json& old = meta["render"];
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
  parallel_for(static_cast<int64_t>(plan.size()), o.jobs, [&](int64_t i) {
    const SynthClipPlan& c = plan[i];
    const std::string path = (videos / (c.id + "." + c.extension)).string();
    const bool skipped = existing_clip_ok(path, o);
    if (!skipped) {
      const RenderedClip clip = render_synth_clip(o, c.action, c.object, c.seed);
      io::VideoWriterOptions w;
      w.codec = c.extension == "webm" ? "vp9" : "h264";
      w.fps = o.fps;
      w.threads = 1;  // one clip per worker; also keeps the encoded bytes reproducible
      io::write_video(path, clip.frames, w);
    }
    std::lock_guard<std::mutex> lock(mu);
    ++state.done;
    ++(skipped ? state.skipped : state.rendered);
    if (progress) progress(state);
  });

  // Label sets: the classes are the selected ones (all of them, even one without clips, so the
  // class indices only depend on the selection).
  std::vector<std::string> action_classes, composite_classes;
  for (const auto& a : o.actions) {
    action_classes.push_back(ssv2_label_of_template(synth_action_row(a).template_text));
    for (const auto& obj : o.objects) composite_classes.push_back(synth_composite_name(a, obj));
  }
  write_label_set(out, action_classes, plan, [](const SynthClipPlan& c) {
    return ssv2_entry(c.id, synth_action_row(c.action).template_text, {c.object});
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
