// `vidfuse train --config FILE [flags]`: trains the fusion model (or a baseline) on a feature
// store, or straight from videos (`--source videos`: frozen backbones run on augmented clips).
// Flags override the config file; the config actually used is saved in every checkpoint and printed
// at the start. `--nproc N` runs N data-parallel ranks on this machine (torchrun-style environment
// variables start a rank on any machine).
#include <cstdio>
#include <fstream>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "command.h"
#include "vidfuse/core/cluster_env.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/launch.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/train/trainer.h"

namespace {

using nlohmann::json;
using namespace vidfuse;

json read_json_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) fail_file(path, "cannot open the config file");
  try {
    return json::parse(in);
  } catch (const json::parse_error& e) {
    fail_file(path, std::string("not valid JSON: ") + e.what());
  }
}

struct TrainFlags {
  std::string config;
  std::map<std::string, std::string> strings;  // JSON pointer -> value, for flags given
  std::map<std::string, double> numbers;
  std::map<std::string, bool> bools;
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
  json j = flags.config.empty() ? json::object() : read_json_file(flags.config);
  if (!j.is_object()) fail_file(flags.config, "the config must be a JSON object");
  for (const auto& [ptr, v] : flags.strings) j[json::json_pointer(ptr)] = v;
  for (const auto& [ptr, v] : flags.bools) j[json::json_pointer(ptr)] = v;
  for (const auto& [ptr, v] : flags.numbers) {
    const bool integral = v == static_cast<double>(static_cast<int64_t>(v)) && ptr != "/lr" &&
                          ptr != "/min_lr" && ptr != "/weight_decay";
    if (integral)
      j[json::json_pointer(ptr)] = static_cast<int64_t>(v);
    else
      j[json::json_pointer(ptr)] = v;
  }
  const std::string where = flags.config.empty() ? "train flags" : flags.config;
  train::TrainConfig config = train::train_config_from_json(j, where);
  if (config.data.train.empty())
    throw Error(where +
                ": no training data (set data.train and data.store, or --train/--store; or "
                "--source videos with --train and the backbones)");

  // One GPU per rank: "cuda" means this rank's own, cuda:LOCAL_RANK (torchrun, --nproc, srun).
  const ProcessPlace place = process_place_from_env();
  if (place.world_size > 1) config.device = device_for_rank(config.device, place.local_rank);
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
  // Flags that override the config: JSON pointer into the config, flag name, help.
  struct StringFlag {
    const char* ptr;
    const char* name;
    const char* help;
  };
  static const StringFlag string_flags[] = {
      {"/data/source", "--source", "store | videos (decode and run the backbones every step)"},
      {"/data/store", "--store", "Feature store (vidfuse extract output)"},
      {"/data/extract/dinov3", "--dinov3", "--source videos: DINOv3 checkpoint or builtin"},
      {"/data/extract/i3d", "--i3d", "--source videos: I3D checkpoint or builtin"},
      {"/data/bad_videos", "--bad-videos", "--source videos: skip | error"},
      {"/data/train", "--train", "Training manifest (SSv2 json, Kinetics csv, path,label csv)"},
      {"/data/val", "--val", "Validation manifest"},
      {"/data/videos", "--videos", "Folder the manifests' ids resolve in"},
      {"/data/streams", "--streams", "both|semantic|motion"},
      {"/model/arch", "--arch", "fusion|semantic|motion|late"},
      {"/output_dir", "--output", "Output folder (checkpoints, log.jsonl, report.html)"},
      {"/resume", "--resume", "Checkpoint to resume from, or \"auto\""},
      {"/device", "--device", "cpu | cuda[:N]"},
      {"/precision", "--precision", "fp32 | bf16"},
  };
  for (const auto& f : string_flags) {
    auto* opt = sub.add_option_function<std::string>(
        f.name,
        [flags, ptr = std::string(f.ptr)](const std::string& v) { flags->strings[ptr] = v; },
        f.help);
    (void)opt;
  }
  static const StringFlag number_flags[] = {
      {"/epochs", "--epochs", "Passes over the training set"},
      {"/max_steps", "--max-steps", "Optimizer steps (overrides --epochs when > 0)"},
      {"/batch_size", "--batch-size", "Global batch size"},
      {"/lr", "--lr", "Peak learning rate"},
      {"/seed", "--seed", "Seed (model init, data order, dropout)"},
      {"/eval_every", "--eval-every", "Steps between validations (0 = every epoch)"},
      {"/model/width", "--width", "Fusion width"},
      {"/model/depth", "--depth", "Cross-attention layers"},
      {"/data/extract/semantic_sampling/num_segments", "--frames",
       "--source videos: semantic frames per video"},
      {"/data/extract/semantic_size", "--size", "--source videos: semantic input size"},
      {"/data/extract/pool", "--pool", "--source videos: patch-grid pooling"},
      {"/data/extract/motion_clip", "--motion-clip", "--source videos: motion clip frames"},
      {"/data/extract/motion_short_side", "--motion-short-side", "--source videos"},
      {"/data/extract/motion_crop", "--motion-crop", "--source videos"},
  };
  for (const auto& f : number_flags)
    sub.add_option_function<double>(
        f.name, [flags, ptr = std::string(f.ptr)](double v) { flags->numbers[ptr] = v; }, f.help);
  static const StringFlag bool_flags[] = {
      {"/data/augment/enabled", "--augment", "--source videos: augment training clips"},
      {"/data/augment/hflip", "--hflip",
       "--source videos: random horizontal flips (wrong for direction-sensitive labels)"},
  };
  for (const auto& f : bool_flags)
    sub.add_option_function<bool>(
        f.name, [flags, ptr = std::string(f.ptr)](bool v) { flags->bools[ptr] = v; }, f.help);
  sub.add_option("--nproc", flags->nproc, "Data-parallel ranks to start on this machine");
  return [flags] { return run_train(*flags); };
}

}  // namespace

VIDFUSE_COMMAND("train", "Train the fusion model (or a baseline) on a feature store or videos",
                setup_train);
