// Training configuration with a strict JSON round trip. The config used is saved in every
// checkpoint, so a run can be inspected and resumed from the checkpoint alone.
#pragma once
#include <array>
#include <nlohmann/json.hpp>
#include <string>

#include "vidfuse/data/augment.h"
#include "vidfuse/models/fusion_config.h"

namespace vidfuse::train {

// Where the training data come from (used by the `train`/`eval` commands; the library's Trainer
// takes datasets directly).
struct DataConfig {
  // "store": features extracted beforehand by `vidfuse extract` (fast epochs, fixed frames).
  // "videos": the manifests' videos decoded and run through the frozen backbones at every visit
  // (no extraction step, new augmentation every epoch, backbone cost in every step).
  std::string source = "store";
  std::string store;   // feature store written by `vidfuse extract`
  std::string train;   // manifest: SSv2 train.json, Kinetics CSV, `path,label` CSV, list, folder
  std::string val;     // validation manifest; empty = no validation
  std::string videos;  // folder the manifests' ids and relative paths resolve in ("" = beside them)
  std::string streams = "both";  // both | semantic | motion: which store tensors to read
  // source "videos": how frames become features, as keys of <store>/extract.json ("dinov3",
  // "i3d" backbone specs, "semantic_size", "pool", "semantic_sampling": {...}, "motion_clip", ...).
  // Keys left out come from <store>/extract.json when `store` names one (so the model matches
  // features extracted there), else from the extractor's defaults. `vidfuse train` saves the
  // complete resolved settings here, so a checkpoint records them.
  nlohmann::json extract = nlohmann::json::object();
  data::VideoAugment augment;       // source "videos", train split only
  std::string bad_videos = "skip";  // source "videos", train split: skip | error
};

struct TrainConfig {
  models::FusionConfig model;
  DataConfig data;

  // Length: `max_steps` optimizer steps if > 0, else `epochs` passes over the train set.
  int64_t epochs = 30;
  int64_t max_steps = 0;
  int64_t batch_size = 32;       // global batch (split evenly across distributed ranks)
  int64_t eval_batch_size = 64;  // per rank

  // AdamW with warmup + cosine decay to `min_lr`.
  double lr = 1e-3;
  double min_lr = 1e-6;
  double weight_decay = 0.05;  // not applied to norms, biases, embeddings and pooling queries
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  int64_t warmup_steps = -1;  // >= 0 overrides warmup_epochs
  double warmup_epochs = 1.0;

  double label_smoothing = 0.1;
  double grad_clip = 1.0;    // max global gradient norm; 0 = off
  double mixup_alpha = 0.0;  // Beta(alpha, alpha) mixing of features and targets; 0 = off
  double mixup_prob = 1.0;   // fraction of batches mixed when mixup is on

  int64_t seed = 0;
  std::string device = "cpu";      // any torch::Device string ("cpu", "cuda", "cuda:1")
  std::string precision = "fp32";  // fp32 | bf16 (bf16 matrix products, fp32 master weights)

  int64_t log_every = 10;        // steps between train log records
  int64_t eval_every = 0;        // steps between validations; 0 = at the end of every epoch
  int64_t checkpoint_every = 0;  // steps between periodic checkpoints; 0 = every epoch
  std::string output_dir;        // checkpoints, log, report; empty = write nothing
  std::string resume;            // checkpoint to resume from; "auto" = output_dir's latest if any

  // Throws vidfuse::Error("<where>: ...") on the first inconsistent field.
  void validate(const std::string& where = "train config") const;
};

nlohmann::json to_json(const TrainConfig& config);
TrainConfig train_config_from_json(const nlohmann::json& json, const std::string& where);
// Reads and validates a JSON config file; errors name the file.
TrainConfig load_train_config(const std::string& path);

}  // namespace vidfuse::train
