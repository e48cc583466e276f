// VideoSampling*: the samplers as pure functions (exact index lists worked out by hand from the
// TSN / mmaction2 / video_features definitions), then end to end on real videos, where the decoded
// pixels must spell exactly the sampled indices.
#include <set>

#include "test_video_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/sampling.h"
#include "vidfuse/io/video_reader.h"

using namespace vidfuse;
using namespace vidfuse::test;
using namespace vidfuse::io;
using V = std::vector<int64_t>;

namespace {
std::vector<double> cfr_times(int64_t n, double fps) {
  std::vector<double> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = static_cast<double>(i) / fps;
  return t;
}
}  // namespace

TEST(VideoSampling, SegmentCentresMatchMmaction2) {
  // mmaction2 test mode: int(k · n/N + n/(2N)); n = 30, N = 8 → 3.75 per segment.
  EXPECT_EQ(segment_indices(30, 8), (V{1, 5, 9, 13, 16, 20, 24, 28}));
  EXPECT_EQ(segment_indices(16, 8), (V{1, 3, 5, 7, 9, 11, 13, 15}));
  EXPECT_EQ(segment_indices(8, 8), iota(8));
  EXPECT_EQ(segment_indices(10, 3), (V{1, 5, 8}));  // exact ties: 5/3 + 10/3 = 5, not 4
  // Shorter than the number of segments: repeats spread evenly, never empty.
  EXPECT_EQ(segment_indices(3, 8), (V{0, 0, 0, 1, 1, 2, 2, 2}));
  EXPECT_EQ(segment_indices(1, 4), (V{0, 0, 0, 0}));
  EXPECT_THROW_WITH(segment_indices(0, 8), "no decodable frames");
  EXPECT_THROW_WITH(segment_indices(10, 0), "num_segments");
}

TEST(VideoSampling, SegmentTrainingStaysInsideItsSegmentAndIsSeeded) {
  std::set<int64_t> seen_in_first;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    SampleRng rng(seed);
    const V s = segment_indices(30, 8, true, &rng);  // average segment: 30 // 8 = 3
    for (int64_t k = 0; k < 8; ++k) {
      EXPECT_GE(s[k], 3 * k);
      EXPECT_LT(s[k], 3 * k + 3);
    }
    seen_in_first.insert(s[0]);
    SampleRng again(seed);
    EXPECT_EQ(segment_indices(30, 8, true, &again), s);
  }
  EXPECT_EQ(seen_in_first, (std::set<int64_t>{0, 1, 2}));
  SampleRng a(1), b(2);
  EXPECT_NE(segment_indices(300, 8, true, &a), segment_indices(300, 8, true, &b));
}

TEST(VideoSampling, UniformClipsMatchMmaction2) {
  // n = 100, clip_len 8, interval 2 (span 16): 85 start positions over 3 clips → 14, 42, 70.
  V expected;
  for (int64_t start : {14, 42, 70})
    for (int64_t j = 0; j < 8; ++j) expected.push_back(start + 2 * j);
  EXPECT_EQ(uniform_clip_indices(100, 8, 2, 3), expected);
  EXPECT_EQ(uniform_clip_indices(16, 16, 1, 1), iota(16));
  // Shorter than one clip: out-of-bound policy.
  EXPECT_EQ(uniform_clip_indices(10, 8, 2, 1, false, nullptr, OutOfBound::Loop),
            (V{0, 2, 4, 6, 8, 0, 2, 4}));
  EXPECT_EQ(uniform_clip_indices(10, 8, 2, 1, false, nullptr, OutOfBound::RepeatLast),
            (V{0, 2, 4, 6, 8, 8, 8, 8}));
  // Training: each clip starts inside its share of the start positions.
  for (uint64_t seed = 0; seed < 50; ++seed) {
    SampleRng rng(seed);
    const V s = uniform_clip_indices(100, 8, 2, 3, true, &rng);  // 85 // 3 = 28 per clip
    for (int64_t k = 0; k < 3; ++k) {
      EXPECT_GE(s[8 * k], 28 * k);
      EXPECT_LT(s[8 * k], 28 * k + 28);
      for (int64_t j = 1; j < 8; ++j) EXPECT_EQ(s[8 * k + j], s[8 * k] + 2 * j);
    }
  }
}

TEST(VideoSampling, OutOfBoundPoliciesWorkClipByClip) {
  EXPECT_EQ(apply_out_of_bound({3, 4, 5, 6, 0, 7, 9, 12}, 6, 4, OutOfBound::RepeatLast),
            (V{3, 4, 5, 5, 0, 0, 0, 0}));
  EXPECT_EQ(apply_out_of_bound({3, 4, 5, 6, 0, 7, 9, 12}, 6, 4, OutOfBound::Loop),
            (V{3, 4, 5, 0, 0, 1, 3, 0}));
}

TEST(VideoSampling, FixedRateResamplesByTimestamp) {
  // 30 → 25 fps over 1 s: output k shows frame floor(30k / 25).
  V expected;
  for (int64_t k = 0; k < 25; ++k) expected.push_back(30 * k / 25);
  EXPECT_EQ(fixed_rate_indices(cfr_times(30, 30), 1.0, 25), expected);
  // 12 → 25 fps: frames repeat (48 frames = 4 s → 100 outputs).
  const V up = fixed_rate_indices(cfr_times(48, 12), 4.0, 25);
  ASSERT_EQ(up.size(), 100u);
  for (int64_t k = 0; k < 100; ++k) EXPECT_EQ(up[k], 12 * k / 25) << k;
  // Same rate: identity.
  EXPECT_EQ(fixed_rate_indices(cfr_times(50, 25), 2.0, 25), iota(50));
  // Variable frame rate: whatever is on screen at each tick.
  const std::vector<double> vfr = {0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0};
  EXPECT_EQ(fixed_rate_indices(vfr, 1.05, 10), (V{0, 1, 2, 2, 3, 5, 5, 5, 5, 6, 7}));
  // Padding to a minimum length.
  EXPECT_EQ(fixed_rate_indices(cfr_times(4, 10), 0.4, 10, 9, OutOfBound::Loop),
            (V{0, 1, 2, 3, 0, 1, 2, 3, 0}));
  EXPECT_EQ(fixed_rate_indices(cfr_times(4, 10), 0.4, 10, 6, OutOfBound::RepeatLast),
            (V{0, 1, 2, 3, 3, 3}));
  EXPECT_THROW_WITH(fixed_rate_indices({}, 1.0, 25), "no decodable frames");
}

TEST(VideoSampling, SlidingWindows) {
  EXPECT_EQ(sliding_window_positions(10, 4, 3), (V{0, 1, 2, 3, 3, 4, 5, 6, 6, 7, 8, 9}));
  EXPECT_EQ(sliding_window_positions(9, 4, 4), (V{0, 1, 2, 3, 4, 5, 6, 7}));  // the tail is dropped
  EXPECT_EQ(sliding_window_positions(3, 4, 4, OutOfBound::Loop), (V{0, 1, 2, 0}));
  EXPECT_EQ(sliding_window_positions(3, 4, 4, OutOfBound::RepeatLast), (V{0, 1, 2, 2}));
}

TEST(VideoSampling, SampleFramesDispatchesAndExplainsShortVideos) {
  SamplingSpec spec;
  spec.kind = SamplingSpec::Kind::Sliding;
  spec.fps = 25;
  spec.stack = 16;
  spec.step = 8;
  // 60 frames at 30 fps = 2 s → 50 frames at 25 fps → windows at 0, 8, 16, 24, 32.
  Sample s = sample_frames(spec, cfr_times(60, 30), 2.0);
  EXPECT_EQ(s.num_groups, 5);
  ASSERT_EQ(s.indices.size(), 80u);
  EXPECT_EQ(s.indices[16], 30 * 8 / 25);
  EXPECT_TRUE(s.notes.empty());

  spec.kind = SamplingSpec::Kind::Uniform;
  spec.clip_len = 8;
  spec.frame_interval = 4;
  spec.num_clips = 2;
  s = sample_frames(spec, cfr_times(10, 30), 10 / 30.0);
  EXPECT_EQ(s.num_groups, 2);
  EXPECT_EQ(s.indices.size(), 16u);
  ASSERT_EQ(s.notes.size(), 1u);
  EXPECT_NE(s.notes[0].find("shorter than one clip"), std::string::npos);

  EXPECT_THROW_WITH(sample_frames(spec, {}, 0), "no decodable frames");
  EXPECT_EQ(parse_sampler_kind("fps"), SamplingSpec::Kind::FixedRate);
  EXPECT_THROW_WITH(parse_sampler_kind("random"), "random", "segment");
}

// ---- end to end: the reader decodes exactly what the sampler chose ---------------------------

TEST(VideoSampling, EverySamplerGetsExactlyItsFramesFromRealVideos) {
  auto& vids = TestVideos::get();
  for (const char* name :
       {"h264", "vp9", "mpeg4", "mpeg4_bframes", "h264_bframes_mkv", "long", "vfr"}) {
    const TestVideo& v = vids[name];
    for (auto kind : {SamplingSpec::Kind::Segment, SamplingSpec::Kind::Uniform,
                      SamplingSpec::Kind::FixedRate, SamplingSpec::Kind::Sliding}) {
      for (bool training : {false, true}) {
        SamplingSpec spec;
        spec.kind = kind;
        spec.num_segments = 8;
        spec.clip_len = 6;
        spec.frame_interval = 2;
        spec.num_clips = 2;
        spec.fps = 25;
        spec.stack = 8;
        spec.step = 5;
        spec.training = training;
        spec.seed = 7;
        VideoReader reader(v.path);
        const FrameTable& table = reader.frames();
        const Sample expected = sample_frames(spec, table.times, table.end_time);
        const Clip clip = load_clip(reader, spec);
        EXPECT_EQ(clip.indices, expected.indices);
        EXPECT_EQ(decode_indices(clip.frames), expected.indices) << name << " " << describe(spec);
        EXPECT_EQ(clip.num_groups, expected.num_groups);
        ASSERT_EQ(clip.times.size(), clip.indices.size());
      }
    }
  }
}

TEST(VideoSampling, FixedRateOnAVariableRateVideo) {
  const TestVideo& v =
      TestVideos::get()["vfr"];  // frames at 0, .1, .15, .4, .45, .5, .9, 1, 1.02, 1.3
  SamplingSpec spec;
  spec.kind = SamplingSpec::Kind::FixedRate;
  spec.fps = 10;
  const Clip clip = load_clip(v.path, spec);
  const V head(clip.indices.begin(), clip.indices.begin() + 11);
  EXPECT_EQ(head, (V{0, 1, 2, 2, 3, 5, 5, 5, 5, 6, 7}));
  EXPECT_EQ(decode_indices(clip.frames), clip.indices);
}

TEST(VideoSampling, ShortVideoIsPaddedWithAMessage) {
  const TestVideo& v = TestVideos::get()["vp8"];  // 20 frames
  SamplingSpec spec;
  spec.kind = SamplingSpec::Kind::Uniform;
  spec.clip_len = 32;
  spec.num_clips = 1;
  spec.out_of_bound = OutOfBound::RepeatLast;
  const Clip clip = load_clip(v.path, spec);
  ASSERT_EQ(clip.frames.size(0), 32);
  V expected = iota(20);
  expected.resize(32, 19);
  EXPECT_EQ(decode_indices(clip.frames), expected);
  ASSERT_FALSE(clip.warnings.empty());
  EXPECT_NE(clip.warnings[0].find(v.path), std::string::npos);
  EXPECT_NE(clip.warnings[0].find("repeat-last"), std::string::npos);
}

// WebM and MKV store milliseconds: frame 2 of a 12 fps clip is at 167 ms, just after the 166.67 ms
// tick. Resampling a video at its own rate must still give every frame once.
TEST(VideoSampling, FixedRateAtTheVideosOwnRateIsTheIdentity) {
  auto& vids = TestVideos::get();
  for (const char* name : {"vp9", "vp8", "h264", "h264_mkv", "h264_bframes_mkv", "mpeg4_bframes"}) {
    const TestVideo& v = vids[name];
    VideoReader reader(v.path);
    const FrameTable& table = reader.frames();
    EXPECT_EQ(fixed_rate_indices(table.times, table.end_time, v.fps), iota(v.frames)) << name;
  }
}
