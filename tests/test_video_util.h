// Helpers for the Video* tests: frames whose pixels spell their own index (a binary code in big
// blocks of black and white, which survives lossy compression), and a set of small test videos
// written once per test binary with vidfuse's own VideoWriter.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "test_util.h"
#include "vidfuse/io/video_writer.h"

namespace vidfuse::test {

// 10 bits as a 5×2 grid of blocks (bit 0 top-left, row-major): indices up to 1023.
constexpr int kCodeCols = 5;
constexpr int kCodeRows = 2;

inline torch::Tensor code_frame(int64_t index, int64_t h, int64_t w) {
  torch::Tensor f = torch::empty({h, w, 3}, torch::kUInt8);
  for (int r = 0; r < kCodeRows; ++r) {
    for (int c = 0; c < kCodeCols; ++c) {
      const int bit = r * kCodeCols + c;
      const uint8_t v = ((index >> bit) & 1) ? 230 : 25;
      f.slice(0, r * h / kCodeRows, (r + 1) * h / kCodeRows)
          .slice(1, c * w / kCodeCols, (c + 1) * w / kCodeCols)
          .fill_(v);
    }
  }
  return f;
}

inline torch::Tensor code_frames(int64_t n, int64_t h, int64_t w, int64_t first = 0) {
  std::vector<torch::Tensor> v;
  for (int64_t i = 0; i < n; ++i) v.push_back(code_frame(first + i, h, w));
  return torch::stack(v);
}

// Reads the index back from the centre of each block; -1 when a block is neither clearly dark nor
// clearly bright (the frame is not one of ours).
inline int64_t decode_index(const torch::Tensor& frame_hw3) {
  const int64_t h = frame_hw3.size(0), w = frame_hw3.size(1);
  int64_t index = 0;
  for (int r = 0; r < kCodeRows; ++r) {
    for (int c = 0; c < kCodeCols; ++c) {
      const int64_t y0 = r * h / kCodeRows, y1 = (r + 1) * h / kCodeRows;
      const int64_t x0 = c * w / kCodeCols, x1 = (c + 1) * w / kCodeCols;
      const int64_t my = (y1 - y0) / 4, mx = (x1 - x0) / 4;
      const double mean = frame_hw3.slice(0, y0 + my, y1 - my)
                              .slice(1, x0 + mx, x1 - mx)
                              .to(torch::kFloat64)
                              .mean()
                              .item<double>();
      if (mean > 170) {
        index |= int64_t{1} << (r * kCodeCols + c);
      } else if (mean > 85) {
        return -1;
      }
    }
  }
  return index;
}

inline std::vector<int64_t> decode_indices(const torch::Tensor& frames_thw3) {
  std::vector<int64_t> out;
  for (int64_t t = 0; t < frames_thw3.size(0); ++t) out.push_back(decode_index(frames_thw3[t]));
  return out;
}

inline std::vector<int64_t> iota(int64_t n, int64_t first = 0) {
  std::vector<int64_t> v(n);
  for (int64_t i = 0; i < n; ++i) v[i] = first + i;
  return v;
}

// One test video: where it is and what was written into it.
struct TestVideo {
  std::string path;
  int64_t frames = 0;
  int64_t width = 0, height = 0;
  double fps = 0;
  std::string codec;          // as the reader reports it
  std::vector<double> times;  // written timestamps (VFR), empty for constant rate
};

// The shared set of videos, written on first use (a couple of seconds) and removed at exit.
class TestVideos {
 public:
  static TestVideos& get() {
    static TestVideos instance;
    return instance;
  }
  const TestVideo& operator[](const std::string& name) const { return videos_.at(name); }
  std::string dir(const std::string& file) const { return dir_ / file; }

 private:
  TestVideos() {
    using io::VideoWriterOptions;
    auto add = [&](const std::string& name, const std::string& file, int64_t n, int64_t w,
                   int64_t h, VideoWriterOptions o, const std::string& codec,
                   std::vector<double> times = {}) {
      TestVideo v{dir_ / file, n, w, h, o.fps, codec, times};
      io::write_video(v.path, code_frames(n, h, w), o, times);
      videos_[name] = v;
    };
    VideoWriterOptions h264;
    h264.codec = "h264";
    h264.fps = 30;
    h264.gop = 10;
    h264.max_b_frames = 2;  // presentation order differs from decode order
    h264.quality = 10;
    h264.codec_options["sc_threshold"] = "0";  // keyframes exactly every `gop` frames
    add("h264", "h264.mp4", 40, 64, 48, h264, "h264");

    VideoWriterOptions vp9;
    vp9.codec = "vp9";
    vp9.fps = 12;
    vp9.gop = 12;
    vp9.quality = 10;
    add("vp9", "vp9.webm", 30, 64, 48, vp9, "vp9");

    VideoWriterOptions vp8 = vp9;
    vp8.codec = "vp8";
    add("vp8", "vp8.webm", 20, 64, 48, vp8, "vp8");

    VideoWriterOptions mpeg4;
    mpeg4.codec = "mpeg4";
    mpeg4.fps = 25;
    mpeg4.gop = 8;
    add("mpeg4", "mpeg4.avi", 30, 64, 48, mpeg4, "mpeg4");

    // MPEG-4 Part 2 with B-frames in AVI, as UCF101 and HMDB51 ship: the container stores decode
    // timestamps only, and the decoder delays its output by one picture.
    VideoWriterOptions mpeg4_b = mpeg4;
    mpeg4_b.max_b_frames = 2;
    mpeg4_b.gop = 12;
    add("mpeg4_bframes", "mpeg4_bframes.avi", 30, 64, 48, mpeg4_b, "mpeg4");

    VideoWriterOptions mjpeg;
    mjpeg.codec = "mjpeg";
    mjpeg.fps = 12;
    add("mjpeg", "mjpeg.avi", 20, 64, 48, mjpeg, "mjpeg");

    VideoWriterOptions mkv = h264;
    mkv.max_b_frames = 0;
    add("h264_mkv", "h264.mkv", 24, 64, 48, mkv, "h264");

    add("h264_bframes_mkv", "h264_bframes.mkv", 24, 64, 48, h264, "h264");

    VideoWriterOptions odd = vp9;
    add("odd_vp9", "odd.webm", 16, 63, 47, odd, "vp9");
    VideoWriterOptions odd264 = h264;
    odd264.pixel_format = "yuv444p";  // 4:2:0 needs even sizes; 4:4:4 takes any
    add("odd_h264", "odd.mkv", 16, 65, 49, odd264, "h264");

    VideoWriterOptions rot = h264;
    rot.rotation = 90;
    add("rot90", "rot90.mp4", 12, 64, 48, rot, "h264");
    rot.rotation = 270;
    add("rot270", "rot270.mp4", 12, 64, 48, rot, "h264");

    // Variable frame rate: bursts and pauses.
    VideoWriterOptions vfr = h264;
    vfr.max_b_frames = 0;
    add("vfr", "vfr.mkv", 10, 64, 48, vfr, "h264",
        {0.0, 0.1, 0.15, 0.4, 0.45, 0.5, 0.9, 1.0, 1.02, 1.3});

    // Long enough that sparse sampling should seek (gop 10, 150 frames).
    VideoWriterOptions longer = h264;
    add("long", "long.mp4", 150, 64, 48, longer, "h264");

    // A raw H.264 elementary stream: no container, no timestamps, no frame count, no duration.
    VideoWriterOptions raw = mkv;
    add("raw", "raw.h264", 20, 64, 48, raw, "h264");
  }
  ScratchDir dir_;
  std::map<std::string, TestVideo> videos_;
};

}  // namespace vidfuse::test
