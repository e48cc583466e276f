// Reading sampled frames of a video: what `vidfuse frames` shows, as tensors. Public API.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace vidfuse {

// Which frames to take (the samplers of io/sampling.h, named as `vidfuse frames` names them).
struct FrameSampling {
  std::string kind = "segment";  // segment | uniform | fps | sliding | all
  int64_t num_segments = 8;      // segment: one frame from the centre of each segment
  int64_t clip_len = 16;         // uniform: clips of clip_len frames, frame_interval apart
  int64_t frame_interval = 1;
  int64_t num_clips = 1;
  double fps = 25;     // fps: resample to this rate (sliding: first, when > 0)
  int64_t stack = 64;  // sliding: windows of `stack` frames every `step`
  int64_t step = 64;
  int64_t min_frames = 0;             // fps: loop short videos up to this many frames
  std::string out_of_bound = "loop";  // past the last frame: loop | repeat-last
};

struct VideoFrames {
  at::Tensor frames;                  // uint8 [T, H, W, 3] RGB
  std::vector<int64_t> indices;       // the source frame behind each output frame
  std::vector<double> times;          // its timestamp (seconds from the first frame)
  int64_t num_groups = 1;             // clips or windows: T = num_groups * (T / num_groups)
  std::vector<std::string> warnings;  // sampling notes and decode warnings
};

// Throws vidfuse::Error naming the file when it cannot be read, or the sampling when it is invalid.
VideoFrames read_video(const std::string& path, const FrameSampling& sampling = {});

// An image file as uint8 RGB [H, W, 3].
at::Tensor read_image(const std::string& path);

}  // namespace vidfuse
