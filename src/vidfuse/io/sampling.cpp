#include "vidfuse/io/sampling.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "vidfuse/core/error.h"

namespace vidfuse::io {

uint64_t SampleRng::next() {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

int64_t SampleRng::uniform_int(int64_t n) {
  if (n <= 0) throw Error("SampleRng::uniform_int: n must be positive");
  // Multiply-shift maps 64 random bits onto [0, n) without the modulo's bias towards small values.
  return static_cast<int64_t>((static_cast<unsigned __int128>(next()) * static_cast<uint64_t>(n)) >>
                              64);
}

double SampleRng::uniform_real(double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(next() >> 11) * 0x1.0p-53;
}

namespace {

void require_frames(int64_t num_frames) {
  if (num_frames <= 0) throw Error("the video has no decodable frames");
}

void require_positive(int64_t v, const char* name) {
  if (v <= 0)
    throw Error(std::string("sampling: ") + name + " must be positive, got " + std::to_string(v));
}

std::string format_number(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

SampleRng& rng_or_default(SampleRng* rng, SampleRng& fallback) { return rng ? *rng : fallback; }

// floor((2k + 1) · span / (2 · count)): the centre of the k-th of `count` equal parts of `span`,
// in exact integer arithmetic (mmaction2 computes it in floats, which agrees except on exact ties
// where float rounding can land one frame early).
int64_t centre_offset(int64_t k, int64_t span, int64_t count) {
  return ((2 * k + 1) * span) / (2 * count);
}

}  // namespace

std::vector<int64_t> segment_indices(int64_t num_frames, int64_t num_segments, bool training,
                                     SampleRng* rng) {
  require_frames(num_frames);
  require_positive(num_segments, "num_segments");
  std::vector<int64_t> out(num_segments);
  const int64_t average = num_frames / num_segments;
  if (training && average > 0) {
    SampleRng fallback(0);
    SampleRng& r = rng_or_default(rng, fallback);
    for (int64_t k = 0; k < num_segments; ++k) out[k] = k * average + r.uniform_int(average);
  } else {
    // Also the short-video case at training: spreading repeats evenly beats TSN's "all zeros".
    for (int64_t k = 0; k < num_segments; ++k) out[k] = centre_offset(k, num_frames, num_segments);
  }
  return out;
}

std::vector<int64_t> apply_out_of_bound(std::vector<int64_t> indices, int64_t num_frames,
                                        int64_t clip_len, OutOfBound out_of_bound) {
  require_frames(num_frames);
  require_positive(clip_len, "clip_len");
  if (out_of_bound == OutOfBound::Loop) {
    for (auto& i : indices) i %= num_frames;
    return indices;
  }
  for (size_t start = 0; start < indices.size(); start += clip_len) {
    const size_t end = std::min(indices.size(), start + static_cast<size_t>(clip_len));
    int64_t last_valid = 0;
    for (size_t i = start; i < end; ++i) {
      if (indices[i] < num_frames)
        last_valid = std::max(last_valid, indices[i]);
      else
        indices[i] = last_valid;
    }
  }
  return indices;
}

std::vector<int64_t> uniform_clip_indices(int64_t num_frames, int64_t clip_len,
                                          int64_t frame_interval, int64_t num_clips, bool training,
                                          SampleRng* rng, OutOfBound out_of_bound) {
  require_frames(num_frames);
  require_positive(clip_len, "clip_len");
  require_positive(frame_interval, "frame_interval");
  require_positive(num_clips, "num_clips");
  const int64_t span = clip_len * frame_interval;  // mmaction2's ori_clip_len
  const int64_t room = num_frames - span + 1;      // how many start positions fit
  std::vector<int64_t> offsets(num_clips, 0);
  if (!training) {
    if (room > 0)
      for (int64_t k = 0; k < num_clips; ++k) offsets[k] = centre_offset(k, room, num_clips);
  } else {
    SampleRng fallback(0);
    SampleRng& r = rng_or_default(rng, fallback);
    const int64_t average = room > 0 ? room / num_clips : 0;
    if (average > 0) {
      for (int64_t k = 0; k < num_clips; ++k) offsets[k] = k * average + r.uniform_int(average);
    } else if (num_frames > std::max(num_clips, span)) {
      for (auto& o : offsets) o = r.uniform_int(room);
      std::sort(offsets.begin(), offsets.end());
    } else if (room > 0) {
      const double ratio = static_cast<double>(room) / static_cast<double>(num_clips);
      for (int64_t k = 0; k < num_clips; ++k)
        offsets[k] = static_cast<int64_t>(std::nearbyint(static_cast<double>(k) * ratio));
    }
  }
  std::vector<int64_t> out;
  out.reserve(num_clips * clip_len);
  for (int64_t k = 0; k < num_clips; ++k)
    for (int64_t j = 0; j < clip_len; ++j) out.push_back(offsets[k] + j * frame_interval);
  return apply_out_of_bound(std::move(out), num_frames, clip_len, out_of_bound);
}

std::vector<int64_t> fixed_rate_indices(const std::vector<double>& times, double end_time,
                                        double target_fps, int64_t min_frames,
                                        OutOfBound out_of_bound) {
  require_frames(static_cast<int64_t>(times.size()));
  if (!(target_fps > 0)) throw Error("sampling: fps must be positive");
  // Timestamps come from integer pts times a time base, and containers round them: WebM / MKV
  // store milliseconds, so frame 2 of a 12 fps clip sits at 167 ms, after the 166.67 ms tick it
  // belongs to. Half a millisecond of slack (plus float rounding) keeps resampling a video at its
  // own rate the identity; it is far below any real frame interval (4 ms at 240 fps).
  constexpr double kSlack = 5e-4 + 1e-6;
  const double t0 = times.front();
  std::vector<int64_t> out;
  for (int64_t k = 0;; ++k) {
    const double t = t0 + static_cast<double>(k) / target_fps;
    if (k > 0 && t >= end_time - kSlack) break;
    const auto it = std::upper_bound(times.begin(), times.end(), t + kSlack);
    out.push_back(static_cast<int64_t>(it - times.begin()) - 1);
  }
  if (static_cast<int64_t>(out.size()) < min_frames) {
    const int64_t have = static_cast<int64_t>(out.size());
    for (int64_t k = have; k < min_frames; ++k)
      out.push_back(out_of_bound == OutOfBound::Loop ? out[k % have] : out[have - 1]);
  }
  return out;
}

std::vector<int64_t> sliding_window_positions(int64_t n, int64_t stack, int64_t step,
                                              OutOfBound out_of_bound) {
  require_frames(n);
  require_positive(stack, "stack");
  require_positive(step, "step");
  std::vector<int64_t> out;
  if (n < stack) {
    for (int64_t j = 0; j < stack; ++j) out.push_back(j);
    return apply_out_of_bound(std::move(out), n, stack, out_of_bound);
  }
  for (int64_t s = 0; s + stack <= n; s += step)
    for (int64_t j = 0; j < stack; ++j) out.push_back(s + j);
  return out;
}

Sample sample_frames(const SamplingSpec& spec, const std::vector<double>& times, double end_time) {
  const int64_t n = static_cast<int64_t>(times.size());
  require_frames(n);
  SampleRng rng(spec.seed);
  Sample s;
  switch (spec.kind) {
    case SamplingSpec::Kind::All:
      for (int64_t i = 0; i < n; ++i) s.indices.push_back(i);
      break;
    case SamplingSpec::Kind::Segment:
      s.indices = segment_indices(n, spec.num_segments, spec.training, &rng);
      if (n < spec.num_segments)
        s.notes.push_back("the video has " + std::to_string(n) + " frames, fewer than " +
                          std::to_string(spec.num_segments) + " segments: frames repeat");
      break;
    case SamplingSpec::Kind::Uniform:
      s.indices = uniform_clip_indices(n, spec.clip_len, spec.frame_interval, spec.num_clips,
                                       spec.training, &rng, spec.out_of_bound);
      s.num_groups = spec.num_clips;
      if (n < spec.clip_len * spec.frame_interval)
        s.notes.push_back("the video has " + std::to_string(n) +
                          " frames, shorter than one clip (" + std::to_string(spec.clip_len) +
                          " x " + std::to_string(spec.frame_interval) + "): padded by " +
                          to_string(spec.out_of_bound));
      break;
    case SamplingSpec::Kind::FixedRate: {
      s.indices = fixed_rate_indices(times, end_time, spec.fps, 0, spec.out_of_bound);
      const int64_t natural = static_cast<int64_t>(s.indices.size());
      if (natural < spec.min_frames) {
        s.indices =
            fixed_rate_indices(times, end_time, spec.fps, spec.min_frames, spec.out_of_bound);
        s.notes.push_back("the video gives " + std::to_string(natural) + " frames at " +
                          format_number(spec.fps) + " fps, fewer than " +
                          std::to_string(spec.min_frames) + ": padded by " +
                          to_string(spec.out_of_bound));
      }
      break;
    }
    case SamplingSpec::Kind::Sliding: {
      std::vector<int64_t> base;
      if (spec.fps > 0) {
        base = fixed_rate_indices(times, end_time, spec.fps, 0, spec.out_of_bound);
      } else {
        for (int64_t i = 0; i < n; ++i) base.push_back(i);
      }
      const int64_t m = static_cast<int64_t>(base.size());
      for (int64_t p : sliding_window_positions(m, spec.stack, spec.step, spec.out_of_bound))
        s.indices.push_back(base[p]);
      s.num_groups = static_cast<int64_t>(s.indices.size()) / spec.stack;
      if (m < spec.stack)
        s.notes.push_back("the video gives " + std::to_string(m) +
                          " frames, fewer than one window of " + std::to_string(spec.stack) +
                          ": padded by " + to_string(spec.out_of_bound));
      break;
    }
  }
  return s;
}

SamplingSpec::Kind parse_sampler_kind(const std::string& name) {
  if (name == "segment") return SamplingSpec::Kind::Segment;
  if (name == "uniform") return SamplingSpec::Kind::Uniform;
  if (name == "fps" || name == "fixed-rate") return SamplingSpec::Kind::FixedRate;
  if (name == "sliding") return SamplingSpec::Kind::Sliding;
  if (name == "all") return SamplingSpec::Kind::All;
  throw Error("unknown sampler '" + name + "' (expected segment, uniform, fps, sliding or all)");
}

std::string to_string(SamplingSpec::Kind kind) {
  switch (kind) {
    case SamplingSpec::Kind::All:
      return "all";
    case SamplingSpec::Kind::Segment:
      return "segment";
    case SamplingSpec::Kind::Uniform:
      return "uniform";
    case SamplingSpec::Kind::FixedRate:
      return "fps";
    case SamplingSpec::Kind::Sliding:
      return "sliding";
  }
  return "?";
}

OutOfBound parse_out_of_bound(const std::string& name) {
  if (name == "loop") return OutOfBound::Loop;
  if (name == "repeat-last" || name == "repeat_last") return OutOfBound::RepeatLast;
  throw Error("unknown out-of-bound policy '" + name + "' (expected loop or repeat-last)");
}

std::string to_string(OutOfBound policy) {
  return policy == OutOfBound::Loop ? "loop" : "repeat-last";
}

std::string describe(const SamplingSpec& spec) {
  std::ostringstream o;
  o << to_string(spec.kind);
  switch (spec.kind) {
    case SamplingSpec::Kind::All:
      break;
    case SamplingSpec::Kind::Segment:
      o << " num_segments=" << spec.num_segments;
      break;
    case SamplingSpec::Kind::Uniform:
      o << " clip_len=" << spec.clip_len << " frame_interval=" << spec.frame_interval
        << " num_clips=" << spec.num_clips;
      break;
    case SamplingSpec::Kind::FixedRate:
      o << " fps=" << spec.fps;
      if (spec.min_frames > 0) o << " min_frames=" << spec.min_frames;
      break;
    case SamplingSpec::Kind::Sliding:
      o << " fps=" << spec.fps << " stack=" << spec.stack << " step=" << spec.step;
      break;
  }
  if (spec.kind == SamplingSpec::Kind::Segment || spec.kind == SamplingSpec::Kind::Uniform) {
    o << (spec.training ? " training seed=" + std::to_string(spec.seed) : " eval");
  }
  if (spec.kind != SamplingSpec::Kind::All && spec.kind != SamplingSpec::Kind::Segment)
    o << " out_of_bound=" << to_string(spec.out_of_bound);
  return o.str();
}

}  // namespace vidfuse::io
