// Video encoder (libavcodec/libavformat): turns uint8 RGB frames into a real video file. Used by
// the tests (videos whose pixels encode the frame index), the decode benchmark and the
// synthetic-dataset generator, so every reader path can be exercised on files made on the spot.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace vidfuse::io {

struct VideoWriterOptions {
  // "h264" (libx264), "h265" (libx265), "vp9" (libvpx-vp9), "vp8" (libvpx), "mpeg4", "mjpeg",
  // "ffv1", or any libavcodec encoder name. The container comes from the file extension (.mp4 .mkv
  // .webm .avi .mov).
  std::string codec = "h264";
  double fps = 25.0;  // nominal rate; frame k is at k/fps unless write() is given a timestamp
  // Display rotation stored as a display matrix (what phones write): the angle, clockwise, by which
  // a player rotates the decoded picture. 0, 90, 180 or 270.
  int rotation = 0;
  int gop = 12;          // keyframe interval in frames
  int max_b_frames = 0;  // B-frames reorder presentation vs decode order (-1: encoder default)
  int quality =
      -1;           // crf for x264/x265/vpx, qscale for mpeg4/mjpeg (lower is better); -1 = default
  int threads = 1;  // encoder threads
  std::string pixel_format;                          // "" = yuv420p (yuvj420p for mjpeg)
  bool faststart = false;                            // MP4: index (moov) before the data
  std::map<std::string, std::string> codec_options;  // passed to the encoder (AVDictionary)
};

// Writes frames one at a time. The file appears under its final name only after close() succeeds
// (temp file + rename), so an interrupted writer never leaves a half video behind.
class VideoWriter {
 public:
  VideoWriter(const std::string& path, int64_t width, int64_t height,
              VideoWriterOptions options = {});
  ~VideoWriter();  // without a successful close() the file is discarded, never left half-written
  VideoWriter(const VideoWriter&) = delete;
  VideoWriter& operator=(const VideoWriter&) = delete;

  // frame: uint8 [H,W,3] RGB (any device/stride). pts_seconds: presentation time for variable frame
  // rate; must increase strictly. Without it frame k is at k/fps.
  void write(const torch::Tensor& frame_hw3, std::optional<double> pts_seconds = std::nullopt);
  void close();
  int64_t frames_written() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Convenience: frames uint8 [T,H,W,3]; pts_seconds empty (constant rate) or one per frame.
void write_video(const std::string& path, const torch::Tensor& frames_thw3,
                 const VideoWriterOptions& options = {},
                 const std::vector<double>& pts_seconds = {});

}  // namespace vidfuse::io
