// Classification metrics (top-1/top-5, per-class accuracy, confusion matrix, loss), accumulated as
// sums so that distributed ranks can add theirs together.
#pragma once
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "vidfuse/data/dataset.h"
#include "vidfuse/models/fusion.h"
#include "vidfuse/train/distributed.h"

namespace vidfuse::train {

struct Metrics {
  int64_t count = 0;
  int64_t num_classes = 0;
  double loss = 0;                         // mean cross-entropy (no label smoothing)
  double top1 = 0;                         // fractions in [0, 1]
  double top5 = 0;                         // top-min(5, K)
  double mean_class_accuracy = 0;          // over classes that have samples
  std::vector<double> per_class_accuracy;  // -1 for classes without samples
  std::vector<int64_t> per_class_count;
  torch::Tensor confusion;  // [K, K] int64: rows = true class, cols = predicted
};

nlohmann::json to_json(const Metrics& metrics, const std::vector<std::string>& class_names = {});

class MetricsAccumulator {
 public:
  explicit MetricsAccumulator(int64_t num_classes);
  // logits [B, K], labels [B]; throws vidfuse::Error on labels outside [0, K).
  void add(const torch::Tensor& logits, const torch::Tensor& labels);
  // Sums this accumulator over all ranks (every rank must call it).
  void all_reduce(Distributed& dist);
  Metrics finish() const;

 private:
  int64_t k_;
  torch::Tensor sums_;  // double [K*K + 3]: confusion, loss sum, top-5 hits, count
};

// Throws vidfuse::Error naming the offending label if any is outside [0, num_classes).
void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& where);

struct EvalOptions {
  int64_t batch_size = 64;
  torch::Device device = torch::kCPU;
  Distributed* dist = nullptr;  // when set, each rank evaluates a strided shard and sums are shared
};

// The model's metrics on the whole dataset (eval mode; the training mode is restored afterwards).
Metrics evaluate(models::FusionModel& model, const data::Dataset& data,
                 const EvalOptions& options = {});

}  // namespace vidfuse::train
