// Video file reader on FFmpeg (libavformat demux, libavcodec decode, libswscale → RGB).
//
// Frames are identified by presentation timestamp, not by decode order or a running count: the
// frame table comes from the demuxed packets (cheap: no decoding), sorted by pts, so variable frame
// rate, B-frames and streams whose header lacks a frame count all work. Decoded frames are matched
// back to the table by their timestamps. A read decodes only up to the last wanted frame, and seeks
// to the keyframe before a wanted frame when that decodes fewer frames than going on sequentially.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "vidfuse/io/frame_source.h"

namespace vidfuse::io {

class VideoReader final : public FrameSource {
 public:
  // Opens and probes the file (no decoding yet). Throws vidfuse::Error naming the file when it is
  // missing, empty, not a video, has no video stream or no decoder.
  explicit VideoReader(const std::string& path, DecodeOptions options = {});
  ~VideoReader() override;
  VideoReader(const VideoReader&) = delete;
  VideoReader& operator=(const VideoReader&) = delete;

  const MediaInfo& info() const override;
  const FrameTable& frames() override;
  torch::Tensor read(const std::vector<int64_t>& indices,
                     std::vector<std::string>* warnings = nullptr) override;
  const std::vector<std::string>& warnings() const override;

  torch::Tensor read_all(std::vector<std::string>* warnings = nullptr);

  // Decodes the whole stream and counts the frames that come out (exact even where the container
  // lies); sets info().frame_count with source "decoded".
  int64_t count_frames_by_decoding();

  // What the last read() cost: frames the decoder produced, frames converted to RGB, seeks.
  struct ReadStats {
    int64_t decoded = 0;
    int64_t converted = 0;
    int64_t seeks = 0;
    int64_t substituted = 0;  // wanted frames that did not decode and were replaced by a neighbour
  };
  const ReadStats& last_read_stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace vidfuse::io
