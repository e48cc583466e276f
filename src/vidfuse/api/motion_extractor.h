// The motion stream as a library call: I3D over a clip of frames or over a video sampled the way
// `vidfuse extract` samples it. Public API.
//
//   vidfuse::MotionExtractor i3d("rgb_imagenet.pt");
//   auto out = i3d.video("clip.mp4");           // out.features [1, 1024, T', 1, 1]
//   auto top = i3d.top_k(out.logits, 5);        // one row per clip of the batch
//   for (auto& c : top[0]) std::cout << c.name << " " << c.score << "\n";
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vidfuse {

struct MotionExtractorOptions {
  std::string device = "auto";  // auto (a GPU when there is one), cpu, cuda, cuda:N
  std::string dtype = "fp32";   // compute dtype: fp32 or bf16
  int64_t short_side = 256;     // I3D preprocessing: resize the short side, then
  int64_t crop = 224;           // a centre crop of crop x crop, values scaled to [-1, 1]
  double fps = 25;              // video(): resampling rate, then
  int64_t clip = 64;            // the centred clip of this many frames (0 = all; short loop)
};

struct MotionFeatures {
  at::Tensor mixed_5c;     // [1, 1024, T5, H5, W5] (compute dtype)
  at::Tensor features;     // [1, 1024, T5-1, 1, 1] float32: the [2,7,7] average pool
  at::Tensor logits;       // [1, K, T5-1, 1, 1] float32, not squeezed
  at::Tensor logits_mean;  // [1, K] float32: logits averaged over time
};

struct ClassScore {
  int64_t index = 0;
  std::string name;  // the Kinetics-400 name for a 400-class head, else "class N"
  double score = 0;  // softmax probability
};

class MotionExtractor {
 public:
  // `weights`: an I3D checkpoint (.pt zip or legacy, .safetensors; piergiaj or video_features
  // names), or "builtin". `flow` (2 input channels) is read from the checkpoint.
  explicit MotionExtractor(const std::string& weights, MotionExtractorOptions options = {});

  // A clip of uint8 RGB frames [T, H, W, 3] (T >= 9 after nothing is dropped; H, W any: they are
  // resized and cropped) through the I3D preprocessing and the model.
  MotionFeatures operator()(const at::Tensor& frames) const;
  // A video file, resampled to options.fps and cut to the centred options.clip frames.
  MotionFeatures video(const std::string& path) const;

  // Top-k classes per row of `logits` ([B, K] or the 5-D [B, K, T, H, W], averaged over time).
  std::vector<std::vector<ClassScore>> top_k(const at::Tensor& logits, int64_t k = 5) const;

  int64_t feature_dim() const;  // 1024 for the real I3D
  int64_t num_classes() const;
  int64_t in_channels() const;  // 3 RGB, 2 flow
  // Kinetics-400's class names (sorted, as DeepMind's label map) when the head has 400 classes,
  // else empty.
  const std::vector<std::string>& class_names() const;
  const std::string& device() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Kinetics-400's 400 class names in label order (shipped with vidfuse).
const std::vector<std::string>& kinetics400_class_names();

}  // namespace vidfuse
