// Frame samplers as pure functions of a video's frame count or frame timestamps: they return frame
// indices, and the reader then decodes exactly those frames. Conventions follow TSN / mmaction2
// (SampleFrames) and v-iashin/video_features (fixed fps + sliding windows), so configurations users
// know carry over unchanged.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "vidfuse/core/settings.h"

namespace vidfuse::io {

// What to do when a clip reaches past the last frame (mmaction2's out_of_bound_opt).
enum class OutOfBound {
  Loop,        // index mod frame count: the video plays again from the start
  RepeatLast,  // the clip freezes on the last frame it reached
};

// A tiny seedable generator (splitmix64) with the distributions written out: <random>'s
// distributions differ between standard libraries, and a training sample must be reproducible.
struct SampleRng {
  explicit SampleRng(uint64_t seed) : state(seed) {}
  uint64_t next();                            // splitmix64
  int64_t uniform_int(int64_t n);             // in [0, n), n > 0
  double uniform_real(double lo, double hi);  // in [lo, hi)
  uint64_t state;
};

// TSN segment sampling: split the video into `num_segments` equal segments and take one frame from
// each: the centre (eval; mmaction2 test mode: floor((k + 0.5) · n / N)) or a random offset inside
// the segment (training; TSN `_sample_indices`). Videos with fewer than N frames give repeated
// frames, spread evenly, never an empty result. n == 0 throws.
std::vector<int64_t> segment_indices(int64_t num_frames, int64_t num_segments,
                                     bool training = false, SampleRng* rng = nullptr);

// mmaction2 SampleFrames: `num_clips` clips of `clip_len` frames taken every `frame_interval`
// frames, the clip starts spread evenly (centred at eval, jittered at training). Returns
// num_clips·clip_len indices, clip by clip. Indices past the end follow `out_of_bound`.
std::vector<int64_t> uniform_clip_indices(int64_t num_frames, int64_t clip_len,
                                          int64_t frame_interval, int64_t num_clips,
                                          bool training = false, SampleRng* rng = nullptr,
                                          OutOfBound out_of_bound = OutOfBound::Loop);

// Resample to `target_fps` by timestamp (variable frame rate safe): output k shows the frame on
// screen at t_k = times[0] + k / target_fps, i.e. the last frame with time <= t_k, for every t_k
// before `end_time` (when the last frame stops being shown). `times` must be increasing.
// min_frames > 0 pads short results to that many frames with `out_of_bound` (for models that need a
// minimum temporal extent, e.g. I3D's 9 frames).
std::vector<int64_t> fixed_rate_indices(const std::vector<double>& times, double end_time,
                                        double target_fps, int64_t min_frames = 0,
                                        OutOfBound out_of_bound = OutOfBound::Loop);

// video_features sliding windows over positions 0..n-1: windows of `stack` positions starting at
// 0, step, 2·step, … while the window fits. A sequence shorter than one window gives one window
// padded with `out_of_bound`. Returns the windows one after another (num_windows·stack positions).
std::vector<int64_t> sliding_window_positions(int64_t n, int64_t stack, int64_t step,
                                              OutOfBound out_of_bound = OutOfBound::Loop);

// Applies `out_of_bound` to indices that may reach past the last frame, clip by clip (groups of
// clip_len): Loop takes them mod n; RepeatLast replaces them with the clip's last valid index.
std::vector<int64_t> apply_out_of_bound(std::vector<int64_t> indices, int64_t num_frames,
                                        int64_t clip_len, OutOfBound out_of_bound);

// One description of "which frames" that commands, configs and the loader pass around.
struct SamplingSpec {
  enum class Kind { All, Segment, Uniform, FixedRate, Sliding };
  Kind kind = Kind::Segment;
  int64_t num_segments = 8;    // Segment
  int64_t clip_len = 16;       // Uniform
  int64_t frame_interval = 1;  // Uniform
  int64_t num_clips = 1;       // Uniform
  double fps = 25.0;           // FixedRate; Sliding resamples to it first when > 0
  int64_t stack = 64;          // Sliding
  int64_t step = 64;           // Sliding
  int64_t min_frames = 0;      // FixedRate
  bool training = false;       // random offsets (Segment, Uniform)
  uint64_t seed = 0;           // for training
  OutOfBound out_of_bound = OutOfBound::Loop;

  // The field table (core/settings.h), as a store's extract.json records a sampler (values are
  // checked by sample_frames). `training` and `seed` are per call, not part of a recipe.
  template <class V>
  void fields(V& v);
};

struct Sample {
  std::vector<int64_t> indices;    // frame indices, group after group (repeats allowed)
  int64_t num_groups = 1;          // clips (Uniform) or windows (Sliding); 1 otherwise
  std::vector<std::string> notes;  // e.g. "video has 5 frames, fewer than 8 segments: repeated"
};

// Runs the sampler named by `spec` on a video's frame timestamps (seconds, increasing) and the time
// its last frame ends. Throws vidfuse::Error (without a file name; callers add it) when the video
// has no frames or the spec is invalid.
Sample sample_frames(const SamplingSpec& spec, const std::vector<double>& times, double end_time);

SamplingSpec::Kind parse_sampler_kind(const std::string& name);  // segment|uniform|fps|sliding|all
std::string to_string(SamplingSpec::Kind kind);
OutOfBound parse_out_of_bound(const std::string& name);  // loop|repeat-last
std::string to_string(OutOfBound policy);

template <class V>
void SamplingSpec::fields(V& v) {
  using settings::field;
  v(field("kind", kind, "Sampler")
        .named(std::vector<Kind>{Kind::All, Kind::Segment, Kind::Uniform, Kind::FixedRate,
                                 Kind::Sliding},
               [](Kind k) { return to_string(k); }));
  v(field("num_segments", num_segments, "Segment: frames (one per segment)"));
  v(field("clip_len", clip_len, "Uniform: frames per clip"));
  v(field("frame_interval", frame_interval, "Uniform: stride between frames"));
  v(field("num_clips", num_clips, "Uniform: clips"));
  v(field("fps", fps, "FixedRate: resampling rate; Sliding resamples to it first when > 0"));
  v(field("stack", stack, "Sliding: window length"));
  v(field("step", step, "Sliding: window step"));
  v(field("min_frames", min_frames, "FixedRate: loop short videos up to this many"));
  v(field("out_of_bound", out_of_bound, "Past the last frame")
        .named(std::vector<OutOfBound>{OutOfBound::Loop, OutOfBound::RepeatLast},
               [](OutOfBound o) { return to_string(o); }));
}
std::string describe(const SamplingSpec& spec);  // one line, for metadata and logs

}  // namespace vidfuse::io
