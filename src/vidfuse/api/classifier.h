// A trained vidfuse model (a `vidfuse train` checkpoint): logits from features, and predictions
// for videos, featurised exactly as its training store was (`vidfuse predict` wraps this class).
// Public API.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "vidfuse/api/motion_extractor.h"  // ClassScore

namespace vidfuse {

struct ClassifierOptions {
  std::string device = "auto";  // auto (a GPU when there is one), cpu, cuda, cuda:N
  // Where predict() finds the extraction settings: the store's extract.json ("" = the training
  // store recorded in the checkpoint), and backbones replacing the recorded ones ("" = keep).
  std::string store, dinov3, i3d;
};

struct Prediction {
  std::string video;
  std::vector<ClassScore> top;  // best first; empty when the video failed
  std::string error;            // why it failed ("" = it did not)
};

class Classifier {
 public:
  // Throws vidfuse::Error naming the file when it is not a vidfuse training checkpoint.
  explicit Classifier(const std::string& checkpoint, ClassifierOptions options = {});

  // Logits [B, K] from store features: "semantic" [B,Ts,h,w,Cs], "semantic_cls" [B,Ts,Cs],
  // "motion" [B,Cm,Tm,Hm,Wm] (those the model reads); one unbatched sample (a store reader's
  // get()) is taken as a batch of one.
  at::Tensor logits(const std::map<std::string, at::Tensor>& features) const;
  // Top-k classes of each video; a video that cannot be read gets its error, the others go on.
  std::vector<Prediction> predict(const std::vector<std::string>& videos, int64_t k = 5) const;

  const std::vector<std::string>& class_names() const;
  int64_t num_classes() const;
  std::string arch() const;  // fusion, semantic, motion or late
  const std::string& device() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace vidfuse
