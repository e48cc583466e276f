// `vidfuse train --config FILE [flags]`: trains the fusion model (or a baseline) on a feature
// store, or straight from videos (`--source videos`: frozen backbones run on augmented clips).
// Flags override the config file; the config actually used is saved in every checkpoint and printed
// at the start. `--nproc N` runs N data-parallel ranks on this machine (torchrun-style environment
// variables start a rank on any machine).
#include <cstdio>
#include <nlohmann/json.hpp>

#include "command.h"
#include "vidfuse/core/cluster_env.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/launch.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/core/settings_cli.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/train/trainer.h"

namespace {

using nlohmann::json;
using namespace vidfuse;

struct TrainFlags {
  std::string config;
  settings::Overrides overrides;  // the flags given, written over the config file's values
  int nproc = 1;
};

void print_record(const json& r) {
  const std::string type = r.value("type", "");
  if (type == "train") {
    std::printf("step %6lld  loss %.4f  acc %.3f  lr %.2e  %.1f samples/s\n",
                static_cast<long long>(r.value("step", 0)), r.value("loss", 0.0),
                r.value("acc", 0.0), r.value("lr", 0.0), r.value("samples_per_s", 0.0));
  } else if (type == "val") {
    std::printf("step %6lld  val loss %.4f  top1 %.4f  top5 %.4f  mean-class %.4f\n",
                static_cast<long long>(r.value("step", 0)), r.value("loss", 0.0),
                r.value("top1", 0.0), r.value("top5", 0.0), r.value("mean_class_accuracy", 0.0));
  }
  std::fflush(stdout);
}

int run_train(const TrainFlags& flags) {
  if (flags.nproc > 1 && !launched_as_worker()) {
    std::printf("starting %d ranks on this machine\n", flags.nproc);
    return launch_local_workers(flags.nproc, this_command_line());
  }
  json j = flags.config.empty() ? json::object() : read_json_file(flags.config, "config file");
  if (!j.is_object()) fail_file(flags.config, "the config must be a JSON object");
  flags.overrides.apply_to(j);
  const std::string where = flags.config.empty() ? "train flags" : flags.config;
  train::TrainConfig config = train::train_config_from_json(j, where);
  if (config.data.train.empty())
    throw Error(where +
                ": no training data (set data.train and data.store, or --train/--store; or "
                "--source videos with --train and the backbones)");

  // One GPU per rank: "auto" and "cuda" mean this rank's own, cuda:LOCAL_RANK (torchrun, --nproc,
  // srun). The resolved name is what the checkpoints record.
  config.device = announce_device(config.device, "train");
  auto dist = train::Distributed::from_env(config.device);
  warn_if_bf16_is_emulated(config.precision == "bf16", config.device);
  auto data = train::open_train_data(config.data, config.model.arch, config.seed, config.device);
  // Saved in every checkpoint: eval and predict then decode exactly the way training did, even
  // once the store these settings partly came from is gone.
  if (data.extract) config.data.extract = data::to_json(*data.extract);
  train::fit_model_to_data(config.model, *data.train, data.class_names);
  config.validate(where);
  if (dist->is_main()) {
    for (const auto& note : data.notes) std::printf("note: %s\n", note.c_str());
    std::printf("train: %lld videos, val: %lld, classes: %lld, arch: %s\n",
                static_cast<long long>(data.train->size()),
                static_cast<long long>(data.val ? data.val->size() : 0),
                static_cast<long long>(config.model.num_classes),
                models::arch_name(config.model.arch).c_str());
    if (data.extract)
      std::printf("from videos: backbones %s | %s, %s augmentation\n",
                  data.extract->dinov3.empty() ? "-" : data.extract->dinov3.c_str(),
                  data.extract->i3d.empty() ? "-" : data.extract->i3d.c_str(),
                  config.data.augment.enabled ? "with" : "without");
    std::printf("config: %s\n", train::to_json(config).dump().c_str());
  }
  train::Trainer trainer(config, data.train, data.val, dist);
  if (dist->is_main()) {
    std::printf("%lld steps (%lld per epoch), %s\n", static_cast<long long>(trainer.total_steps()),
                static_cast<long long>(trainer.steps_per_epoch()),
                trainer.step() > 0 ? ("resumed at step " + std::to_string(trainer.step())).c_str()
                                   : "from scratch");
    trainer.set_log_callback(print_record);
  }
  auto summary = trainer.fit();
  if (dist->is_main()) {
    std::printf("done: %lld steps, train loss %.4f", static_cast<long long>(summary.steps),
                summary.train_loss);
    if (summary.val)
      std::printf(", val top1 %.4f (best %.4f at step %lld)", summary.val->top1,
                  summary.best_val_top1, static_cast<long long>(summary.best_step));
    std::printf("\n");
    if (!config.output_dir.empty())
      std::printf(
          "outputs: %s/{checkpoint-last,checkpoint-best}.safetensors, log.jsonl, "
          "metrics.json, report.html\n",
          config.output_dir.c_str());
  }
  return 0;
}

std::function<int()> setup_train(CLI::App& sub) {
  auto flags = std::make_shared<TrainFlags>();
  sub.add_option("--config", flags->config, "JSON config (TrainConfig: model, data, schedule...)");
  // Flags that override the config: those of the field tables (TrainConfig, its model, data and
  // data.augment), then the few that point into data.extract, which stays raw JSON (resolved
  // against the store's extract.json later, see DataConfig::extract).
  settings::add_flags<train::TrainConfig>(sub, flags->overrides);
  struct ExtractFlag {
    const char* name;
    const char* key;  // under /data/extract
    const char* help;
  };
  static const ExtractFlag extract_strings[] = {
      {"--dinov3", "/dinov3", "--source videos: DINOv3 checkpoint or builtin"},
      {"--i3d", "/i3d", "--source videos: I3D checkpoint or builtin"},
  };
  static const ExtractFlag extract_integers[] = {
      {"--frames", "/semantic_sampling/num_segments", "--source videos: semantic frames per video"},
      {"--size", "/semantic_size", "--source videos: semantic input size"},
      {"--pool", "/pool", "--source videos: patch-grid pooling"},
      {"--motion-clip", "/motion_clip", "--source videos: motion clip frames"},
      {"--motion-short-side", "/motion_short_side", "--source videos"},
      {"--motion-crop", "/motion_crop", "--source videos"},
  };
  for (const auto& f : extract_strings)
    settings::add_flag<std::string>(sub, flags->overrides, f.name,
                                    std::string("/data/extract") + f.key, f.help);
  for (const auto& f : extract_integers)
    settings::add_flag<int64_t>(sub, flags->overrides, f.name, std::string("/data/extract") + f.key,
                                f.help);
  sub.add_option("--nproc", flags->nproc, "Data-parallel ranks to start on this machine");
  return [flags] { return run_train(*flags); };
}

}  // namespace

VIDFUSE_COMMAND("train", "Train the fusion model (or a baseline) on a feature store or videos",
                setup_train);
