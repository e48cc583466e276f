#include "vidfuse/api/video.h"

#include "vidfuse/core/error.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/sampling.h"

namespace vidfuse {

namespace {

io::SamplingSpec to_spec(const FrameSampling& s) {
  io::SamplingSpec spec;
  spec.kind = io::parse_sampler_kind(s.kind);
  spec.num_segments = s.num_segments;
  spec.clip_len = s.clip_len;
  spec.frame_interval = s.frame_interval;
  spec.num_clips = s.num_clips;
  spec.fps = s.fps;
  spec.stack = s.stack;
  spec.step = s.step;
  spec.min_frames = s.min_frames;
  spec.out_of_bound = io::parse_out_of_bound(s.out_of_bound);
  return spec;
}

}  // namespace

VideoFrames read_video(const std::string& path, const FrameSampling& sampling) {
  io::Clip clip = io::load_clip(path, to_spec(sampling));
  return {clip.frames, std::move(clip.indices), std::move(clip.times), clip.num_groups,
          std::move(clip.warnings)};
}

at::Tensor read_image(const std::string& path) { return io::read_image_rgb(path); }

}  // namespace vidfuse
