// `vidfuse frames VIDEO --sampler ... --out DIR`: the sampled (and optionally transformed) frames
// as PNG files plus frames.json (which source frame each file shows), to check a sampling setup by
// eye. Every file is written atomically.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/video_transforms.h"

namespace {

struct FramesArgs {
  std::string video, out, sampler = "segment", transform = "none", out_of_bound = "loop";
  vidfuse::io::SamplingSpec spec;
  int decode_threads = 0;
  std::string seek = "auto";
};

int run_frames(const FramesArgs& a) {
  using namespace vidfuse::io;
  SamplingSpec spec = a.spec;
  spec.kind = parse_sampler_kind(a.sampler);
  spec.out_of_bound = parse_out_of_bound(a.out_of_bound);
  const TransformPreset preset = parse_transform_preset(a.transform);
  DecodeOptions decode;
  decode.threads = a.decode_threads;
  if (a.seek == "auto")
    decode.seek = SeekMode::Auto;
  else if (a.seek == "never")
    decode.seek = SeekMode::Never;
  else if (a.seek == "always")
    decode.seek = SeekMode::Always;
  else
    throw vidfuse::Error("--seek '" + a.seek + "': auto, never or always");

  const Clip clip = load_clip(a.video, spec, decode);
  torch::Tensor view = clip.frames;
  if (preset != TransformPreset::None)
    view = preset_to_viewable(preset, apply_preset(preset, clip.frames));

  std::error_code ec;
  std::filesystem::create_directories(a.out, ec);
  if (ec) vidfuse::fail_file(a.out, "cannot create the output folder: " + ec.message());
  nlohmann::json files = nlohmann::json::array();
  const int64_t per_group = view.size(0) / std::max<int64_t>(1, clip.num_groups);
  for (int64_t k = 0; k < view.size(0); ++k) {
    char name[96];
    std::snprintf(name, sizeof(name), "frame_%05lld_g%03lld_src%06lld.png",
                  static_cast<long long>(k), static_cast<long long>(k / per_group),
                  static_cast<long long>(clip.indices[k]));
    write_image_rgb((std::filesystem::path(a.out) / name).string(), view[k]);
    files.push_back({{"file", name},
                     {"group", k / per_group},
                     {"source_index", clip.indices[k]},
                     {"time", clip.times[k]}});
  }
  nlohmann::json meta = {{"video", a.video},
                         {"sampling", describe(spec)},
                         {"transform", to_string(preset)},
                         {"groups", clip.num_groups},
                         {"frames", files},
                         {"warnings", clip.warnings}};
  vidfuse::write_text_atomically((std::filesystem::path(a.out) / "frames.json").string(),
                                 meta.dump(2) + "\n");
  for (const auto& w : clip.warnings) std::cerr << "vidfuse: warning: " << w << "\n";
  std::cout << "wrote " << view.size(0) << " frames (" << describe(spec) << ", transform "
            << to_string(preset) << ") to " << a.out << "\n";
  return 0;
}

}  // namespace

VIDFUSE_COMMAND(
    "frames", "Write a video's sampled frames as PNG files, for checking sampling by eye",
    [](CLI::App& sub) {
      auto a = std::make_shared<FramesArgs>();
      sub.add_option("VIDEO", a->video, "Video file, frame folder or image")->required();
      sub.add_option("--out", a->out, "Output folder")->required();
      sub.add_option("--seek", a->seek, "auto | never | always (how the reader reaches frames)")
          ->capture_default_str();
      sub.add_option("--sampler", a->sampler, "segment | uniform | fps | sliding | all")
          ->capture_default_str();
      sub.add_option("--segments", a->spec.num_segments, "segment: number of segments")
          ->capture_default_str();
      sub.add_option("--clip-len", a->spec.clip_len, "uniform: frames per clip")
          ->capture_default_str();
      sub.add_option("--frame-interval", a->spec.frame_interval, "uniform: stride between frames")
          ->capture_default_str();
      sub.add_option("--clips", a->spec.num_clips, "uniform: number of clips")
          ->capture_default_str();
      sub.add_option("--fps", a->spec.fps, "fps / sliding: target frame rate (sliding: 0 = native)")
          ->capture_default_str();
      sub.add_option("--min-frames", a->spec.min_frames, "fps: pad to at least this many frames");
      sub.add_option("--stack", a->spec.stack, "sliding: window length")->capture_default_str();
      sub.add_option("--step", a->spec.step, "sliding: window step")->capture_default_str();
      sub.add_flag("--train", a->spec.training, "random offsets (segment, uniform)");
      sub.add_option("--seed", a->spec.seed, "seed for --train");
      sub.add_option("--out-of-bound", a->out_of_bound, "short videos: loop | repeat-last")
          ->capture_default_str();
      sub.add_option("--transform", a->transform, "none | dinov3 | i3d (frames shown after it)")
          ->capture_default_str();
      sub.add_option("--decode-threads", a->decode_threads, "Decoder threads (0 = auto)");
      return [a]() { return run_frames(*a); };
    });
