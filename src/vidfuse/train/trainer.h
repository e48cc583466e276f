// The training loop: data order, AdamW + schedule, mixup, gradient averaging across ranks,
// validation, logging, reports and resumable checkpoints.
//
// Determinism: the model is initialised from `seed`; epoch e visits the train set in a permutation
// drawn from (seed, e); dropout and mixup draw from RNGs seeded from `seed` that are saved in every
// checkpoint. A run resumed from a checkpoint therefore continues the same trajectory, and with
// dropout and mixup off, W ranks with global batch B follow the single-process run with batch B
// (up to the order of floating-point summation).
//
// Outputs in config.output_dir (rank 0 only): log.jsonl (one JSON record per line, appended),
// checkpoint-last.safetensors (periodic), checkpoint-best.safetensors (best validation top-1),
// metrics.json and report.html (after every validation).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "vidfuse/data/dataset.h"
#include "vidfuse/models/fusion.h"
#include "vidfuse/train/distributed.h"
#include "vidfuse/train/metrics.h"
#include "vidfuse/train/optimizer.h"
#include "vidfuse/train/train_config.h"

namespace vidfuse::train {

struct TrainSummary {
  int64_t steps = 0;      // optimizer updates done in total (including before a resume)
  double train_loss = 0;  // mean over the last logging window
  double train_acc = 0;
  std::optional<Metrics> val;  // metrics at the last validation
  double best_val_top1 = -1;
  int64_t best_step = -1;
};

class Trainer {
 public:
  // `val` may be null (no validation, no best checkpoint). `dist` null = single process.
  // Throws vidfuse::Error if the config is inconsistent or the data do not fit the model.
  Trainer(TrainConfig config, std::shared_ptr<const data::Dataset> train,
          std::shared_ptr<const data::Dataset> val = nullptr,
          std::shared_ptr<Distributed> dist = nullptr);
  ~Trainer();

  // Restores model, optimizer, schedule position, RNGs, data position and best-so-far from a
  // checkpoint written by this class. (config.resume does this from the constructor.)
  void resume(const std::string& checkpoint_path);
  // Trains to the end of the schedule, or until `stop_at_step` updates are done (a checkpoint is
  // written there when output_dir is set).
  TrainSummary fit(int64_t stop_at_step = -1);
  // Writes the full training state (collective-free; in distributed runs call it on every rank,
  // only rank 0 writes).
  void save_checkpoint(const std::string& path);
  // Validation metrics on the val set (collective in distributed runs).
  Metrics validate();

  models::FusionModel& model() { return model_; }
  const TrainConfig& config() const { return config_; }
  int64_t step() const { return step_; }
  int64_t total_steps() const { return schedule_.total_steps; }
  int64_t steps_per_epoch() const { return steps_per_epoch_; }
  const CosineSchedule& schedule() const { return schedule_; }
  const std::vector<nlohmann::json>& log() const { return log_; }
  // Called with every log record (train and val) as it is made, on every rank.
  void set_log_callback(std::function<void(const nlohmann::json&)> fn) {
    log_callback_ = std::move(fn);
  }

 private:
  struct Running {
    double loss = 0, acc = 0, grad_norm = 0;
    double data_wait_s = 0;  // time the step waited for its batch
    int64_t steps = 0, samples = 0;
  };
  std::vector<int64_t> batch_indices(int64_t step);
  void train_step(const data::Batch& batch);
  void record(nlohmann::json entry);
  void after_validation(const Metrics& m);
  void write_outputs(const Metrics& m);
  void check_fits(const data::Dataset& data, const std::string& name);
  std::string output_path(const std::string& name) const;

  TrainConfig config_;
  std::shared_ptr<const data::Dataset> train_, val_;
  std::shared_ptr<Distributed> dist_;
  torch::Device device_;
  models::FusionModel model_{nullptr};
  ParamGroups groups_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  CosineSchedule schedule_;
  int64_t steps_per_epoch_ = 0;
  int64_t step_ = 0;
  std::mt19937_64 mixup_rng_;
  int64_t perm_epoch_ = -1;
  std::vector<int64_t> perm_;
  Running running_;
  double last_log_time_ = 0;
  double best_top1_ = -1;
  int64_t best_step_ = -1;
  std::optional<Metrics> last_val_;
  int64_t last_val_step_ = -1;
  std::vector<nlohmann::json> log_;
  TrainSummary summary_;
  std::function<void(const nlohmann::json&)> log_callback_;
};

// A trained model read back from a checkpoint this Trainer wrote (periodic or best), for
// evaluation and prediction: the model in eval mode, the config it was trained with, the class
// names of its training data when the config's manifests can still be read.
struct TrainedModel {
  models::FusionModel model{nullptr};
  TrainConfig config;
  int64_t step = 0;
  std::vector<std::string> class_names;  // of the training data; empty when it had none
};
// Throws vidfuse::Error naming the file when it is not a vidfuse training checkpoint or its
// tensors do not fit the saved config.
TrainedModel load_trained_model(const std::string& path);

// The permutation of [0, n) that epoch `epoch` of a run seeded with `seed` visits (Fisher-Yates on
// mt19937_64, so it is the same on every platform and rank).
std::vector<int64_t> epoch_permutation(int64_t n, int64_t seed, int64_t epoch);

}  // namespace vidfuse::train
