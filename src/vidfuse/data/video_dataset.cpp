#include "vidfuse/data/video_dataset.h"

#include <iostream>

#include "vidfuse/core/error.h"
#include "vidfuse/models/video_model.h"

namespace vidfuse::data {

namespace {

// splitmix64 finaliser: neighbouring (index, draw) pairs get unrelated seeds.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

VideoDataset::VideoDataset(Manifest manifest, models::DinoV3ViT dinov3, models::InceptionI3d i3d,
                           VideoDatasetOptions options)
    : manifest_(std::move(manifest)),
      dinov3_(std::move(dinov3)),
      i3d_(std::move(i3d)),
      options_(std::move(options)),
      draws_(new std::atomic<uint64_t>[manifest_.videos.size()]) {
  if (dinov3_.is_empty() && i3d_.is_empty())
    throw Error("VideoDataset: no backbone given (DINOv3, I3D or both)");
  if (!i3d_.is_empty() && options_.recipe.motion_crop < models::kI3DMinSize)
    throw Error("VideoDataset: motion crop " + std::to_string(options_.recipe.motion_crop) +
                " is below I3D's " + std::to_string(models::kI3DMinSize) + " px minimum");
  if (options_.recipe.pool < 1) throw Error("VideoDataset: pool must be >= 1");
  const auto& a = options_.augment;
  if (!(a.scale[0] > 0 && a.scale[0] <= a.scale[1] && a.scale[1] <= 1 && a.ratio[0] > 0 &&
        a.ratio[0] <= a.ratio[1]))
    throw Error(
        "VideoDataset: augment scale must be an increasing range in (0, 1] and ratio an "
        "increasing positive range");
  for (size_t i = 0; i < manifest_.videos.size(); ++i) draws_[i] = 0;
  if (!dinov3_.is_empty()) dinov3_->eval();
  if (!i3d_.is_empty()) i3d_->eval();
}

const VideoEntry& VideoDataset::entry(int64_t index) const {
  if (index < 0 || index >= size())
    throw Error("VideoDataset: index " + std::to_string(index) + " out of range [0, " +
                std::to_string(size()) + ")");
  return manifest_.videos[static_cast<size_t>(index)];
}

int64_t VideoDataset::label(int64_t index) const { return entry(index).label; }

StreamInputs VideoDataset::inputs(int64_t index, uint64_t draw) const {
  const VideoEntry& v = entry(index);
  const uint64_t seed = mix(mix(options_.seed ^ mix(static_cast<uint64_t>(index))) + draw);
  return load_stream_inputs(v.path, options_.recipe, !dinov3_.is_empty(), !i3d_.is_empty(),
                            options_.training ? &options_.augment : nullptr, seed);
}

Sample VideoDataset::sample(int64_t index, uint64_t draw) const {
  StreamInputs in = inputs(index, draw);
  models::VideoBatch batch;
  if (in.semantic.defined()) batch.semantic = in.semantic.unsqueeze(0);
  if (in.motion.defined()) batch.motion = in.motion.unsqueeze(0);
  models::FusionInput f;
  {
    torch::NoGradGuard no_grad;
    f = models::backbone_features(dinov3_, i3d_, batch, options_.recipe.pool);
  }
  Sample s;
  auto one = [](const torch::Tensor& t) {
    return t.defined() ? t[0].to(torch::kCPU).contiguous() : torch::Tensor();
  };
  s.semantic = one(f.semantic);
  s.semantic_cls = one(f.semantic_cls);
  s.motion = one(f.motion);
  s.label = entry(index).label;
  return s;
}

bool VideoDataset::known_bad(int64_t index) const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_.count(index) > 0;
}

Sample VideoDataset::get(int64_t index) const {
  entry(index);  // range check before anything else
  const int64_t n = size();
  for (int64_t tries = 0; tries < n; ++tries) {
    const int64_t i = (index + tries) % n;
    if (options_.skip_bad && known_bad(i)) continue;
    const uint64_t draw = options_.training ? draws_[static_cast<size_t>(i)]++ : 0;
    try {
      return sample(i, draw);
    } catch (const Error& e) {
      if (!options_.skip_bad) throw;
      std::lock_guard<std::mutex> lock(mutex_);
      failures_[i] = e.what();
      std::ostream& log = options_.log ? *options_.log : std::cerr;
      log << "vidfuse: warning: skipping an unreadable video (the next readable one stands in "
             "for it from now on): "
          << e.what() << "\n";
    }
  }
  throw Error("VideoDataset: none of the " + std::to_string(n) + " videos of " + manifest_.source +
              " could be read (see the warnings above)");
}

std::map<int64_t, std::string> VideoDataset::failures() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_;
}

}  // namespace vidfuse::data
