// `vidfuse bench decode [--json]`: decode (+ sample, + transform) throughput on two clips the bench
// encodes itself — SSv2-like (VP9 WebM 240p 12 fps 4 s) and Kinetics-like (H.264 MP4 360p 30 fps
// 10 s, B-frames) — next to the ceiling `ffmpeg -threads N -i FILE -f null -` on the same file, and
// the prefetching loader's consumer idle fraction against a simulated model.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/prefetch_loader.h"
#include "vidfuse/io/video_reader.h"
#include "vidfuse/io/video_transforms.h"
#include "vidfuse/io/video_writer.h"

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace vio = vidfuse::io;

struct BenchClip {
  std::string name, file, codec;
  int64_t width, height;
  double fps, seconds;
  int gop, quality, max_b_frames;
  std::string path;
  int64_t frames() const { return static_cast<int64_t>(std::llround(fps * seconds)); }
};

// Moving, textured content so the encoder spends realistic bits (flat synthetic frames would make
// decoding unrealistically cheap).
torch::Tensor synthetic_frame(int64_t t, int64_t h, int64_t w, torch::Tensor& noise) {
  auto y = torch::arange(h, torch::kFloat32).view({h, 1});
  auto x = torch::arange(w, torch::kFloat32).view({1, w});
  const double ft = static_cast<double>(t);
  auto r = 128 + 90 * torch::sin(x / 23.0 + ft * 0.11) * torch::cos(y / 31.0 - ft * 0.05);
  auto g = 128 + 90 * torch::sin(y / 17.0 - ft * 0.07 + x / 53.0);
  auto b = 128 + 90 * torch::sin((x + y) / 29.0 + ft * 0.05);
  auto img = torch::stack({r, g, b}, -1);
  for (int k = 0; k < 4; ++k) {  // objects crossing the frame
    const int64_t size = h / (4 + k);
    const int64_t cx = (static_cast<int64_t>(ft * (3 + 2 * k)) + k * w / 4) % (w - size);
    const int64_t cy = (h / 5) * (k + 1) % (h - size);
    img.slice(0, cy, cy + size).slice(1, cx, cx + size).fill_(40.0 + 50.0 * k);
  }
  const int64_t shift = (t * 7) % (noise.size(1) - w);
  img += noise.slice(1, shift, shift + w);
  return img.clamp(0, 255).to(torch::kUInt8);
}

void make_clip(const BenchClip& c) {
  vio::VideoWriterOptions o;
  o.codec = c.codec;
  o.fps = c.fps;
  o.gop = c.gop;
  o.quality = c.quality;
  o.max_b_frames = c.max_b_frames;
  o.threads = 0;
  vio::VideoWriter writer(c.path, c.width, c.height, o);
  torch::manual_seed(0);
  torch::Tensor noise = torch::randn({c.height, c.width + 256, 3}) * 10;
  for (int64_t t = 0; t < c.frames(); ++t)
    writer.write(synthetic_frame(t, c.height, c.width, noise));
  writer.close();
}

struct Timing {
  double best = 1e30;  // steady state: buffers and page cache warm
  double first = 0;    // the first run, cold buffers included
};

template <typename F>
Timing time_runs(int repeat, F&& fn) {
  Timing t;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    fn();
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (i == 0) t.first = s;
    t.best = std::min(t.best, s);
  }
  return t;
}

struct FfmpegTime {
  double rtime = -1;  // ffmpeg's own -benchmark real time (excludes process start-up)
  double wall = -1;   // including start-up
};

FfmpegTime ffmpeg_time(const std::string& path, int threads, int repeat) {
  FfmpegTime best;
  const std::string cmd = "ffmpeg -hide_banner -nostdin -benchmark -threads " +
                          std::to_string(threads) + " -i '" + path + "' -f null - 2>&1";
  static const std::regex rtime_re("rtime=([0-9.]+)s");
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = Clock::now();
    FILE* p = ::popen(cmd.c_str(), "r");
    if (!p) return {};
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) out.append(buf, n);
    const int status = ::pclose(p);
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    std::smatch m;
    if (status != 0 || !std::regex_search(out, m, rtime_re)) return {};
    const double rtime = std::stod(m[1]);
    if (best.rtime < 0 || rtime < best.rtime) best.rtime = rtime;
    if (best.wall < 0 || wall < best.wall) best.wall = wall;
  }
  return best;
}

struct Row {
  std::string clip, mode;
  int threads;
  int64_t source_frames, output_frames;
  double seconds;
  double first_seconds;
  FfmpegTime ffmpeg;
  std::string note;
};

json row_json(const BenchClip& c, const Row& r) {
  json j = {{"bench", "decode"},
            {"cpu_isa", vidfuse::cpu_isa()},
            {"clip", r.clip},
            {"codec", c.codec},
            {"size", std::to_string(c.width) + "x" + std::to_string(c.height)},
            {"fps", c.fps},
            {"mode", r.mode},
            {"threads", r.threads == 0 ? std::string("all") : std::to_string(r.threads)},
            {"source_frames", r.source_frames},
            {"output_frames", r.output_frames},
            {"seconds", r.seconds},
            {"first_run_seconds", r.first_seconds},
            {"frames_per_s", r.source_frames / r.seconds}};
  if (r.ffmpeg.rtime > 0) {
    j["ceiling"] = "ffmpeg -threads " + std::to_string(r.threads) + " -i FILE -f null -";
    j["ffmpeg_seconds"] = r.ffmpeg.rtime;
    j["ffmpeg_wall_seconds"] = r.ffmpeg.wall;
    j["ffmpeg_frames_per_s"] = r.source_frames / r.ffmpeg.rtime;
    j["ratio"] =
        r.seconds / r.ffmpeg.rtime;  // ours / ffmpeg: <= 1.3 is the target for decode+sample
  } else {
    j["ceiling"] = nullptr;
  }
  if (!r.note.empty()) j["note"] = r.note;
  return j;
}

int run_decode_bench(bool as_json, int repeat, double model_ms, std::string dir) {
  namespace fs = std::filesystem;
  bool remove_dir = false;
  if (dir.empty()) {
    std::string tmpl = (fs::temp_directory_path() / "vidfuse-bench-XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw vidfuse::Error("cannot create a temp dir");
    dir = tmpl;
    remove_dir = true;
  }
  fs::create_directories(dir);
  std::vector<BenchClip> clips = {
      {"ssv2-like", "ssv2.webm", "vp9", 427, 240, 12.0, 4.0, 48, 32, 0, ""},
      {"kinetics-like", "kinetics.mp4", "h264", 640, 360, 30.0, 10.0, 60, 23, -1, ""},
  };
  for (auto& c : clips) {
    c.path = (fs::path(dir) / c.file).string();
    if (!fs::exists(c.path)) make_clip(c);
  }

  std::vector<std::pair<const BenchClip*, Row>> rows;
  for (const auto& c : clips) {
    const int64_t n = c.frames();
    for (int threads : {1, 0}) {
      const FfmpegTime ff = ffmpeg_time(c.path, threads, repeat);
      vio::DecodeOptions decode;
      decode.threads = threads;
      auto add = [&](const std::string& mode, const vio::SamplingSpec* spec,
                     vio::TransformPreset preset, bool transform) {
        int64_t out_frames = 0;
        const Timing s = time_runs(repeat, [&] {
          vio::VideoReader reader(c.path, decode);
          torch::Tensor frames;
          if (spec) {
            frames = vio::load_clip(reader, *spec).frames;
          } else {
            frames = reader.read_all();
          }
          if (transform) frames = vio::apply_preset(preset, frames);
          out_frames = spec ? static_cast<int64_t>(frames.size(
                                  preset == vio::TransformPreset::I3D && transform ? 1 : 0))
                            : frames.size(0);
        });
        rows.push_back({&c, Row{c.name, mode, threads, n, out_frames, s.best, s.first, ff, ""}});
      };
      add("decode-all-rgb", nullptr, vio::TransformPreset::None, false);
      vio::SamplingSpec seg;
      seg.kind = vio::SamplingSpec::Kind::Segment;
      seg.num_segments = 8;
      add("decode+segment8", &seg, vio::TransformPreset::None, false);
      add("decode+segment8+dinov3", &seg, vio::TransformPreset::DINOv3, true);
      vio::SamplingSpec rate;
      rate.kind = vio::SamplingSpec::Kind::FixedRate;
      rate.fps = 25;
      add("decode+fps25", &rate, vio::TransformPreset::None, false);
      add("decode+fps25+i3d", &rate, vio::TransformPreset::I3D, true);
    }
  }

  // The loader against a simulated model (a sleep: a GPU model leaves the CPU to the workers).
  // First with no model at all, which measures what the loader can deliver; then with a model
  // that needs `model_ms` per clip (default: 1.25x the loader's own pace, i.e. a model just slower
  // than the extraction path), where the model should not wait after the first clip.
  std::vector<std::string> paths;
  for (int i = 0; i < 6; ++i)
    for (const auto& c : clips) paths.push_back(c.path);
  auto loader_run = [&](double ms) {
    vio::SamplingSpec seg;
    seg.kind = vio::SamplingSpec::Kind::Segment;
    seg.num_segments = 8;
    vio::DecodeOptions loader_decode;
    loader_decode.threads = 1;  // parallelism comes from the workers
    vio::LoaderOptions lo;
    lo.workers = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    lo.capacity = 2 * lo.workers;
    vio::PrefetchLoader<vio::Clip> loader(
        static_cast<int64_t>(paths.size()),
        vio::clip_task(paths, seg, vio::TransformPreset::DINOv3, loader_decode), lo);
    double work = 0;
    int64_t failed = 0;
    while (auto item = loader.next()) {
      work += item->seconds;
      failed += item->ok() ? 0 : 1;
      std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
    }
    const vio::LoaderStats ls = loader.stats();
    const double per_item = ls.elapsed_seconds / std::max<int64_t>(1, ls.delivered);
    return json{{"bench", "decode-loader"},
                {"pipeline", "segment8 + dinov3 transform, both clips alternating"},
                {"items", ls.delivered},
                {"failed", failed},
                {"workers", lo.workers},
                {"capacity", lo.capacity},
                {"model_ms_per_item", ms},
                {"worker_seconds_per_item", work / std::max<int64_t>(1, ls.delivered)},
                {"delivered_items_per_s", 1.0 / per_item},
                {"consumer_wait_seconds", ls.wait_seconds},
                {"first_wait_seconds", ls.first_wait_seconds},
                {"elapsed_seconds", ls.elapsed_seconds},
                {"idle_fraction", ls.idle_fraction()}};
  };
  std::vector<json> loader_rows;
  loader_rows.push_back(loader_run(0.0));
  const double pace_ms = 1e3 / loader_rows[0]["delivered_items_per_s"].get<double>();
  loader_rows.push_back(loader_run(model_ms > 0 ? model_ms : 1.25 * pace_ms));

  if (as_json) {
    for (const auto& [c, r] : rows) std::cout << row_json(*c, r).dump() << "\n";
    for (const auto& l : loader_rows) std::cout << l.dump() << "\n";
  } else {
    std::printf("%-14s %-24s %-4s %8s %9s %9s %9s %6s\n", "clip", "mode", "thr", "frames", "ms",
                "frames/s", "ffmpeg ms", "ratio");
    for (const auto& [c, r] : rows) {
      const json j = row_json(*c, r);
      std::printf("%-14s %-24s %-4s %8lld %9.1f %9.0f %9.1f %6.2f\n", r.clip.c_str(),
                  r.mode.c_str(), r.threads == 0 ? "all" : "1",
                  static_cast<long long>(r.source_frames), r.seconds * 1e3,
                  j["frames_per_s"].get<double>(), r.ffmpeg.rtime * 1e3,
                  r.ffmpeg.rtime > 0 ? r.seconds / r.ffmpeg.rtime : NAN);
    }
    for (const auto& l : loader_rows)
      std::printf(
          "loader: %lld items, %d workers, model %.0f ms/item, loader delivers %.1f items/s, "
          "idle fraction %.3f (first wait %.0f ms)\n",
          static_cast<long long>(l["items"].get<int64_t>()), l["workers"].get<int>(),
          l["model_ms_per_item"].get<double>(), l["delivered_items_per_s"].get<double>(),
          l["idle_fraction"].get<double>(), 1e3 * l["first_wait_seconds"].get<double>());
  }
  if (remove_dir) fs::remove_all(dir);
  return 0;
}

}  // namespace

VIDFUSE_BENCH(
    "decode", "Decode + sample + transform throughput vs the ffmpeg CLI", [](CLI::App& sub) {
      auto as_json = std::make_shared<bool>(false);
      auto repeat = std::make_shared<int>(3);
      auto model_ms = std::make_shared<double>(0.0);
      auto dir = std::make_shared<std::string>();
      sub.add_flag("--json", *as_json, "One JSON object per line");
      sub.add_option("--repeat", *repeat, "Best of N runs")->capture_default_str();
      sub.add_option("--model-ms", *model_ms,
                     "Simulated model time per clip (0: 1.25x the loader pace)")
          ->capture_default_str();
      sub.add_option("--dir", *dir, "Keep (and reuse) the generated clips in this folder");
      return [=]() { return run_decode_bench(*as_json, std::max(1, *repeat), *model_ms, *dir); };
    });
