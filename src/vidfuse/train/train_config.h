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
  std::string store;
  std::string train;
  std::string val;
  std::string videos;
  std::string streams = "both";
  // source "videos": how frames become features, as keys of <store>/extract.json ("dinov3",
  // "i3d" backbone specs, "semantic_size", "pool", "semantic_sampling": {...}, "motion_clip", ...).
  // Keys left out come from <store>/extract.json when `store` names one (so the model matches
  // features extracted there), else from the extractor's defaults. `vidfuse train` saves the
  // complete resolved settings here, so a checkpoint records them. Kept as raw JSON: the extractor
  // resolves it (data::extract_settings_from_json), and `train --frames` etc. write into it.
  nlohmann::json extract = nlohmann::json::object();
  data::VideoAugment augment;
  std::string bad_videos = "skip";
  int64_t readers = 0;   // threads reading store samples (0: half the cores, 2 to 16)
  int64_t prefetch = 4;  // batches read ahead of the step (bounds the loader's memory)

  template <class V>
  void fields(V& v) {
    using settings::field;
    v(field("source", source,
            "Where the training data come from (videos: decode and run the "
            "backbones every step)")
          .one_of({"store", "videos"})
          .flag("--source"));
    v(field("store", store, "Feature store (vidfuse extract output)").flag("--store"));
    v(field("train", train,
            "Training manifest (SSv2 json, Kinetics csv, path,label csv, list, "
            "folder)")
          .flag("--train"));
    v(field("val", val, "Validation manifest (empty: no validation)").flag("--val"));
    v(field("videos", videos, "Folder the manifests' ids resolve in (empty: beside them)")
          .flag("--videos"));
    v(field("streams", streams, "Which store tensors to read")
          .one_of({"both", "semantic", "motion"})
          .flag("--streams"));
    v(field("extract", extract, "--source videos: extraction settings (extract.json keys)"));
    v.object("augment", augment);  // --source videos, train split only
    v(field("bad_videos", bad_videos, "--source videos, train split: what an unreadable video does")
          .one_of({"skip", "error"})
          .flag("--bad-videos"));
    v(field("readers", readers, "Threads reading training samples")
          .flag("--readers")
          .at_least(0)
          .note("0 = half the cores"));
    v(field("prefetch", prefetch, "Batches read ahead of the training step")
          .flag("--prefetch")
          .at_least(1));
  }
};

struct TrainConfig {
  models::FusionConfig model;
  DataConfig data;

  // Length: `max_steps` optimizer steps if > 0, else `epochs` passes over the train set.
  int64_t epochs = 30;
  int64_t max_steps = 0;
  int64_t batch_size = 32;
  int64_t eval_batch_size = 64;

  // AdamW with warmup + cosine decay to `min_lr`.
  double lr = 1e-3;
  double min_lr = 1e-6;
  double weight_decay = 0.05;  // not applied to norms, biases, embeddings and pooling queries
  std::array<double, 2> betas{0.9, 0.999};
  double eps = 1e-8;
  int64_t warmup_steps = -1;
  double warmup_epochs = 1.0;

  double label_smoothing = 0.1;
  double grad_clip = 1.0;
  double mixup_alpha = 0.0;
  double mixup_prob = 1.0;

  int64_t seed = 0;
  std::string device = "auto";
  std::string precision = "fp32";  // bf16: bf16 matrix products, fp32 master weights

  int64_t log_every = 10;
  int64_t eval_every = 0;
  int64_t checkpoint_every = 0;
  std::string output_dir;
  std::string resume;

  // The field table (core/settings.h): JSON keys, help, flags and per-field checks. The checks
  // that involve two fields (min_lr <= lr, resume "auto" needs output_dir, ...) are validate()'s.
  template <class V>
  void fields(V& v) {
    using settings::field;
    v.object("model", model);
    v.object("data", data);
    v(field("epochs", epochs, "Passes over the training set").flag("--epochs"));
    v(field("max_steps", max_steps, "Optimizer steps (overrides epochs when > 0)")
          .flag("--max-steps")
          .at_least(0)
          .note("0 = use epochs"));
    v(field("batch_size", batch_size, "Global batch size (split evenly across ranks)")
          .flag("--batch-size")
          .at_least(1));
    v(field("eval_batch_size", eval_batch_size, "Evaluation batch size per rank").at_least(1));
    v(field("lr", lr, "Peak learning rate").flag("--lr").positive());
    v(field("min_lr", min_lr, "Learning rate at the end of the cosine decay"));
    v(field("weight_decay", weight_decay, "AdamW weight decay").at_least(0));
    v(field("betas", betas, "AdamW betas").in(0, 1));
    v(field("eps", eps, "AdamW epsilon").positive());
    v(field("warmup_steps", warmup_steps, "Warmup steps; >= 0 overrides warmup_epochs"));
    v(field("warmup_epochs", warmup_epochs, "Warmup length in epochs").at_least(0));
    v(field("label_smoothing", label_smoothing, "Label smoothing").in(0, 1));
    v(field("grad_clip", grad_clip, "Max global gradient norm").at_least(0).note("0 = off"));
    v(field("mixup_alpha", mixup_alpha, "Beta(alpha, alpha) mixing of features and targets")
          .at_least(0)
          .note("0 = off"));
    v(field("mixup_prob", mixup_prob, "Fraction of batches mixed when mixup is on")
          .in(0, 1, /*closed=*/true));
    v(field("seed", seed, "Seed (model init, data order, dropout)").flag("--seed"));
    v(field("device", device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          .flag("--device"));
    v(field("precision", precision, "Matrix product precision")
          .one_of({"fp32", "bf16"})
          .flag("--precision"));
    v(field("log_every", log_every, "Steps between train log records").at_least(1));
    v(field("eval_every", eval_every, "Steps between validations")
          .flag("--eval-every")
          .at_least(0)
          .note("0 = every epoch"));
    v(field("checkpoint_every", checkpoint_every, "Steps between periodic checkpoints")
          .at_least(0)
          .note("0 = every epoch"));
    v(field("output_dir", output_dir,
            "Output folder (checkpoints, log.jsonl, report.html); empty: write nothing")
          .flag("--output"));
    v(field("resume", resume, "Checkpoint to resume from, or \"auto\" (output_dir's latest)")
          .flag("--resume"));
  }

  // Throws vidfuse::Error("<where>: ...") on the first inconsistent field.
  void validate(const std::string& where = "train config") const;
};

nlohmann::json to_json(const TrainConfig& config);
TrainConfig train_config_from_json(const nlohmann::json& json, const std::string& where);
// Reads and validates a JSON config file; errors name the file.
TrainConfig load_train_config(const std::string& path);

}  // namespace vidfuse::train
