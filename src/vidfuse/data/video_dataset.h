// Videos as a training set: each get() decodes a manifest's video with the extractor's sampling
// and transforms (plus train-time augmentation), runs the frozen backbones and returns the stream
// features, so the Trainer trains the fusion model from videos exactly as from a feature store.
//
// Randomness: the k-th get() of sample i (k counted per sample by this object) draws its
// augmentation from (seed, i, k): a run is reproducible given the seed and the order the Trainer
// asks in, and every epoch sees new positions and crops. sample(i, k) is the same draw without the
// counter. Evaluation (training = false) samples the centres every time.
#pragma once
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "vidfuse/data/augment.h"
#include "vidfuse/data/dataset.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/data/stream_inputs.h"

namespace vidfuse::data {

struct VideoDatasetOptions {
  // Sampling, transform sizes and pool, as a feature store's extract.json records them (the
  // backbones are given to the constructor; the storage dtype does not apply).
  ExtractRecipe recipe;
  bool training = false;  // augment (see VideoAugment); false = the extractor's centred frames
  VideoAugment augment;
  uint64_t seed = 0;
  // A video that cannot be read: false = get() throws an error naming the file; true = it is
  // reported once on `log`, remembered in failures(), and the next readable video of the
  // manifest is returned in its place (so an unattended epoch survives a few corrupt files).
  bool skip_bad = false;
  std::ostream* log = nullptr;  // nullptr = std::cerr
};

class VideoDataset : public Dataset {
 public:
  // A null backbone turns its stream off (the sample leaves it undefined). The backbones are put
  // in eval mode and only ever run without autograd; share them with other datasets freely
  // (concurrent forwards of a frozen module are safe).
  VideoDataset(Manifest manifest, models::DinoV3ViT dinov3, models::InceptionI3d i3d,
               VideoDatasetOptions options);

  int64_t size() const override { return static_cast<int64_t>(manifest_.videos.size()); }
  // semantic [Ts,h,w,Cs], semantic_cls [Ts,Cs], motion [Cm,T',H',W'] float32 CPU, the label from
  // the manifest.
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override;
  std::vector<std::string> class_names() const override { return manifest_.class_names; }
  std::string sample_name(int64_t index) const override { return entry(index).path; }

  // Visit `draw` of sample `index`: its frames, and its features.
  StreamInputs inputs(int64_t index, uint64_t draw = 0) const;
  Sample sample(int64_t index, uint64_t draw = 0) const;

  // Videos skipped so far (skip_bad), by manifest index: the error naming the file.
  std::map<int64_t, std::string> failures() const;
  const Manifest& manifest() const { return manifest_; }
  const VideoDatasetOptions& options() const { return options_; }

 private:
  const VideoEntry& entry(int64_t index) const;
  bool known_bad(int64_t index) const;

  Manifest manifest_;
  mutable models::DinoV3ViT dinov3_{nullptr};
  mutable models::InceptionI3d i3d_{nullptr};
  VideoDatasetOptions options_;
  std::unique_ptr<std::atomic<uint64_t>[]> draws_;  // visits per sample so far
  mutable std::mutex mutex_;
  mutable std::map<int64_t, std::string> failures_;
};

}  // namespace vidfuse::data
