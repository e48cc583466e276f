#include "vidfuse/train/train_config.h"

#include <fstream>

#include "vidfuse/core/error.h"

namespace vidfuse::train {

void TrainConfig::validate(const std::string& where) const {
  auto require = [&](bool ok, const std::string& what) {
    if (!ok) throw Error(where + ": " + what);
  };
  model.validate(where + ": model");
  require(epochs >= 1 || max_steps > 0, "epochs must be >= 1 (or set max_steps)");
  require(max_steps >= 0, "max_steps must be >= 0 (0 = use epochs)");
  require(batch_size >= 1, "batch_size must be >= 1, got " + std::to_string(batch_size));
  require(eval_batch_size >= 1, "eval_batch_size must be >= 1");
  require(lr > 0, "lr must be positive");
  require(min_lr >= 0 && min_lr <= lr, "min_lr must be in [0, lr]");
  require(weight_decay >= 0, "weight_decay must be >= 0");
  require(betas[0] >= 0 && betas[0] < 1 && betas[1] >= 0 && betas[1] < 1,
          "betas must be in [0, 1)");
  require(eps > 0, "eps must be positive");
  require(warmup_epochs >= 0, "warmup_epochs must be >= 0");
  require(label_smoothing >= 0 && label_smoothing < 1, "label_smoothing must be in [0, 1)");
  require(grad_clip >= 0, "grad_clip must be >= 0 (0 = off)");
  require(mixup_alpha >= 0, "mixup_alpha must be >= 0 (0 = off)");
  require(mixup_prob >= 0 && mixup_prob <= 1, "mixup_prob must be in [0, 1]");
  require(precision == "fp32" || precision == "bf16",
          "precision must be \"fp32\" or \"bf16\", got \"" + precision + "\"");
  try {
    torch::Device d(device);
    (void)d;
  } catch (const c10::Error&) {
    throw Error(where + ": device \"" + device +
                "\" is not a device (use \"cpu\" or \"cuda[:N]\")");
  }
  require(
      data.streams == "both" || data.streams == "semantic" || data.streams == "motion",
      "data.streams must be \"both\", \"semantic\" or \"motion\", got \"" + data.streams + "\"");
  require(data.source == "store" || data.source == "videos",
          "data.source must be \"store\" or \"videos\", got \"" + data.source + "\"");
  require(data.extract.is_object(), "data.extract must be a JSON object (extract.json keys)");
  require(data.bad_videos == "skip" || data.bad_videos == "error",
          "data.bad_videos must be \"skip\" or \"error\", got \"" + data.bad_videos + "\"");
  const auto& a = data.augment;
  require(a.scale[0] > 0 && a.scale[0] <= a.scale[1] && a.scale[1] <= 1,
          "data.augment.scale must be an increasing range in (0, 1]");
  require(a.ratio[0] > 0 && a.ratio[0] <= a.ratio[1],
          "data.augment.ratio must be an increasing positive range");
  require(log_every >= 1, "log_every must be >= 1");
  require(eval_every >= 0, "eval_every must be >= 0 (0 = every epoch)");
  require(checkpoint_every >= 0, "checkpoint_every must be >= 0 (0 = every epoch)");
  require(resume.empty() || !output_dir.empty() || resume != "auto",
          "resume \"auto\" needs an output_dir");
}

nlohmann::json to_json(const TrainConfig& c) {
  return {{"model", models::to_json(c.model)},
          {"data",
           {{"source", c.data.source},
            {"store", c.data.store},
            {"train", c.data.train},
            {"val", c.data.val},
            {"videos", c.data.videos},
            {"streams", c.data.streams},
            {"extract", c.data.extract},
            {"augment",
             {{"enabled", c.data.augment.enabled},
              {"temporal_jitter", c.data.augment.temporal_jitter},
              {"scale", c.data.augment.scale},
              {"ratio", c.data.augment.ratio},
              {"hflip", c.data.augment.hflip}}},
            {"bad_videos", c.data.bad_videos}}},
          {"epochs", c.epochs},
          {"max_steps", c.max_steps},
          {"batch_size", c.batch_size},
          {"eval_batch_size", c.eval_batch_size},
          {"lr", c.lr},
          {"min_lr", c.min_lr},
          {"weight_decay", c.weight_decay},
          {"betas", c.betas},
          {"eps", c.eps},
          {"warmup_steps", c.warmup_steps},
          {"warmup_epochs", c.warmup_epochs},
          {"label_smoothing", c.label_smoothing},
          {"grad_clip", c.grad_clip},
          {"mixup_alpha", c.mixup_alpha},
          {"mixup_prob", c.mixup_prob},
          {"seed", c.seed},
          {"device", c.device},
          {"precision", c.precision},
          {"log_every", c.log_every},
          {"eval_every", c.eval_every},
          {"checkpoint_every", c.checkpoint_every},
          {"output_dir", c.output_dir},
          {"resume", c.resume}};
}

TrainConfig train_config_from_json(const nlohmann::json& json, const std::string& where) {
  TrainConfig c;
  models::JsonObjectReader r(json, where);
  if (const auto* m = r.child("model"))
    c.model = models::fusion_config_from_json(*m, where + ": model");
  if (const auto* d = r.child("data")) {
    models::JsonObjectReader dr(*d, where + ": data");
    dr.read("source", c.data.source);
    dr.read("store", c.data.store);
    dr.read("train", c.data.train);
    dr.read("val", c.data.val);
    dr.read("videos", c.data.videos);
    dr.read("streams", c.data.streams);
    if (const auto* e = dr.child("extract")) c.data.extract = *e;
    if (const auto* a = dr.child("augment")) {
      models::JsonObjectReader ar(*a, where + ": data.augment");
      ar.read("enabled", c.data.augment.enabled);
      ar.read("temporal_jitter", c.data.augment.temporal_jitter);
      ar.read("scale", c.data.augment.scale);
      ar.read("ratio", c.data.augment.ratio);
      ar.read("hflip", c.data.augment.hflip);
      ar.finish();
    }
    dr.read("bad_videos", c.data.bad_videos);
    dr.finish();
  }
  r.read("epochs", c.epochs);
  r.read("max_steps", c.max_steps);
  r.read("batch_size", c.batch_size);
  r.read("eval_batch_size", c.eval_batch_size);
  r.read("lr", c.lr);
  r.read("min_lr", c.min_lr);
  r.read("weight_decay", c.weight_decay);
  r.read("betas", c.betas);
  r.read("eps", c.eps);
  r.read("warmup_steps", c.warmup_steps);
  r.read("warmup_epochs", c.warmup_epochs);
  r.read("label_smoothing", c.label_smoothing);
  r.read("grad_clip", c.grad_clip);
  r.read("mixup_alpha", c.mixup_alpha);
  r.read("mixup_prob", c.mixup_prob);
  r.read("seed", c.seed);
  r.read("device", c.device);
  r.read("precision", c.precision);
  r.read("log_every", c.log_every);
  r.read("eval_every", c.eval_every);
  r.read("checkpoint_every", c.checkpoint_every);
  r.read("output_dir", c.output_dir);
  r.read("resume", c.resume);
  r.finish();
  c.validate(where);
  return c;
}

TrainConfig load_train_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_file(path, "cannot open the config file");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::parse_error& e) {
    fail_file(path, std::string("not valid JSON: ") + e.what());
  }
  return train_config_from_json(j, path);
}

}  // namespace vidfuse::train
