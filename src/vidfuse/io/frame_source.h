// One interface over everything a dataset can hold as "a video": a video file (FFmpeg), a folder of
// frame images (img_00001.jpg …, the mmaction2 rawframes layout) or a single image. Sampling works
// on the source's frame timestamps; the source then decodes exactly the selected frames.
#pragma once
#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "vidfuse/io/sampling.h"

namespace vidfuse::io {

struct MediaInfo {
  std::string path;
  std::string kind;  // "video", "frames" (image folder) or "image"
  std::string
      container;      // libavformat demuxer name ("mov,mp4,m4a,3gp,3g2,mj2", "matroska,webm", …)
  std::string codec;  // "h264", "vp9", … ("jpeg", "png" for images)
  std::string pixel_format;
  int64_t width = 0;  // as the frames come out: after rotation
  int64_t height = 0;
  int rotation = 0;          // clockwise degrees the display metadata asks for (0, 90, 180, 270)
  double fps = 0;            // average frame rate; 0 when unknown
  double duration = 0;       // seconds; 0 when unknown
  int64_t frame_count = -1;  // -1 when unknown
  std::string frame_count_source;  // "header", "index" (demuxed packets), "decoded" or "files"
  int64_t bit_rate = 0;
};

// The presentation timeline: frame i is shown from times[i] until times[i + 1] (the last one until
// end_time). Times are seconds from the first frame, strictly increasing.
struct FrameTable {
  std::vector<double> times;
  std::vector<uint8_t> keyframe;  // 1 where decoding can start without earlier frames
  double end_time = 0;
  int64_t size() const { return static_cast<int64_t>(times.size()); }
};

// How a video file is decoded.
enum class SeekMode {
  Auto,  // per gap between wanted frames: decode through it or seek to the keyframe before the
         // next wanted frame, whichever decodes fewer frames (dense → sequential, sparse → seeks)
  Never,   // one sequential pass
  Always,  // seek whenever a keyframe lies between two wanted frames
};

struct DecodeOptions {
  // Decoder threads: 0 = FFmpeg's choice (about one per core), 1 = single-threaded.
  int threads = 0;
  SeekMode seek = SeekMode::Auto;
  // Let the decoder skip non-reference frames (most B-frames) that no one asked for: a sparse
  // read then decodes only the frames the wanted ones depend on.
  bool skip_unneeded = true;
  bool apply_rotation = true;      // rotate frames as the display matrix says (phone videos)
  double image_folder_fps = 30.0;  // frame folders have no timestamps: frame i is at i / fps
};

class FrameSource {
 public:
  virtual ~FrameSource() = default;
  // What the header says, refined once frames() or a decode has learnt more.
  virtual const MediaInfo& info() const = 0;
  // The frame timeline (for video files: from the demuxed packets, no decoding). Built on first
  // call.
  virtual const FrameTable& frames() = 0;
  // Frames by index into frames(), in the order given (repeats allowed): uint8 [T,H,W,3] RGB.
  // Problems that still leave a usable result (an undecodable frame replaced by its neighbour)
  // are appended to `warnings`, each naming the file.
  virtual torch::Tensor read(const std::vector<int64_t>& indices,
                             std::vector<std::string>* warnings = nullptr) = 0;
  // Warnings found while opening/indexing (truncated file, frames before the first keyframe…).
  virtual const std::vector<std::string>& warnings() const = 0;
};

// Opens a video file, a folder of frame images or a single image (by what the path is). Throws
// vidfuse::Error naming the path when it cannot be read.
std::unique_ptr<FrameSource> open_frame_source(const std::string& path,
                                               const DecodeOptions& options = {});

// True for file names OpenCV reads as images (.jpg .jpeg .png .bmp .webp .tif .tiff).
bool is_image_file(const std::string& path);

// An uninitialised CPU tensor for frames. Large ones (>= 8 MiB) come from a small pool of
// transparent-huge-page buffers that are reused once their tensor dies: on virtual machines the
// first touch of fresh memory can cost more than decoding into it (2.8 s of page faults measured
// for the 207 MB of a dense 10 s 360p clip, against 1.1 s to decode it), and a dataset job asks for
// the same sizes again and again. At most 1 GiB is kept for reuse.
torch::Tensor empty_frame_buffer(c10::IntArrayRef sizes, torch::ScalarType dtype = torch::kUInt8);

// A sampled clip: what a stream's transform gets.
struct Clip {
  torch::Tensor frames;               // uint8 [T,H,W,3]
  std::vector<int64_t> indices;       // the source frame behind each output frame
  std::vector<double> times;          // its timestamp (seconds from the first frame)
  int64_t num_groups = 1;             // clips/windows: T = num_groups · (T / num_groups)
  std::vector<std::string> warnings;  // sampling notes and decode warnings, each naming the file
  MediaInfo info;
};

Clip load_clip(FrameSource& source, const SamplingSpec& spec);
Clip load_clip(const std::string& path, const SamplingSpec& spec,
               const DecodeOptions& options = {});

}  // namespace vidfuse::io
