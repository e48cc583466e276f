// What the trainer reads: an indexable set of samples of stream features. The feature store
// (StoreDataset), videos run through the frozen backbones (VideoDataset) and synthetic test data
// (TensorDataset) all implement `Dataset`.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "vidfuse/models/fusion.h"

namespace vidfuse::data {

struct Sample {
  torch::Tensor semantic;      // [Ts, h, w, Cs] (undefined for motion-only data)
  torch::Tensor semantic_cls;  // [Ts, Cs] or undefined
  torch::Tensor motion;        // [Cm, Tm, Hm, Wm] (undefined for semantic-only data)
  int64_t label = -1;          // class index; -1 = unlabelled
  std::string source;          // where it was read from (a store file), for messages; may be empty
};

class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  // Must be safe to call from one background thread while the caller computes (prefetching).
  virtual Sample get(int64_t index) const = 0;
  // The label of sample `index` alone; datasets whose get() is expensive (decoding a video)
  // answer from their manifest.
  virtual int64_t label(int64_t index) const { return get(index).label; }
  // Class names by index, when the dataset knows them (used in reports).
  virtual std::vector<std::string> class_names() const { return {}; }
  // What errors call sample `index`: its file where the dataset reads one (store file, video).
  virtual std::string sample_name(int64_t index) const { return "sample " + std::to_string(index); }
};

// Samples held in memory as stacked tensors (leading dimension = sample).
class TensorDataset : public Dataset {
 public:
  // semantic [N, Ts, h, w, Cs] or undefined; semantic_cls [N, Ts, Cs] or undefined;
  // motion [N, Cm, Tm, Hm, Wm] or undefined; labels [N] int64.
  TensorDataset(torch::Tensor semantic, torch::Tensor semantic_cls, torch::Tensor motion,
                torch::Tensor labels, std::vector<std::string> class_names = {});
  int64_t size() const override { return labels_.size(0); }
  Sample get(int64_t index) const override;
  std::vector<std::string> class_names() const override { return class_names_; }

 private:
  torch::Tensor semantic_, semantic_cls_, motion_, labels_;
  std::vector<std::string> class_names_;
};

struct Batch {
  models::FusionInput input;
  torch::Tensor labels;          // [B] int64
  std::vector<int64_t> indices;  // the samples' dataset indices (errors name them)
};

// Stacks samples into a batch; throws vidfuse::Error naming the dataset index whose shapes differ
// from the first sample's.
Batch collate(const std::vector<Sample>& samples, const std::vector<int64_t>& indices);

// The samples `indices` of `data`, collated.
Batch load_batch(const Dataset& data, const std::vector<int64_t>& indices);

}  // namespace vidfuse::data
