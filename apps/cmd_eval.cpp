// `vidfuse eval --checkpoint CKPT`: metrics of a trained model on a manifest's videos from a
// feature store (by default the validation set and store the model was trained with).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/train/metrics.h"
#include "vidfuse/train/report.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/train/trainer.h"

namespace {

using namespace vidfuse;

struct EvalFlags {
  std::string checkpoint, manifest, store, videos, output, report, device = "auto";
  bool json = false;
  int64_t batch_size = 64;
};

int run_eval(const EvalFlags& f) {
  auto trained = train::load_trained_model(f.checkpoint);
  train::DataConfig data = trained.config.data;
  if (!f.store.empty()) data.store = f.store;
  if (!f.videos.empty()) data.videos = f.videos;
  data.train.clear();
  data.val = f.manifest.empty() ? data.val : f.manifest;
  if (data.val.empty())
    throw Error(f.checkpoint +
                ": the model was trained without a validation manifest; give one "
                "with --manifest");
  auto sets = train::open_train_data(data, trained.config.model.arch);
  for (const auto& note : sets.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  if (!sets.class_names.empty() &&
      static_cast<int64_t>(sets.class_names.size()) != trained.config.model.num_classes)
    throw Error(data.val + " has " + std::to_string(sets.class_names.size()) +
                " classes, the model in " + f.checkpoint + " was trained for " +
                std::to_string(trained.config.model.num_classes));
  train::EvalOptions options;
  options.batch_size = f.batch_size;
  options.device = torch::Device(announce_device(f.device, "eval"));
  trained.model->to(options.device);
  const train::Metrics m = train::evaluate(trained.model, *sets.val, options);
  nlohmann::json j = train::to_json(m, sets.class_names);
  j["device"] = options.device.str();
  if (!f.output.empty()) write_text_atomically(f.output, j.dump(2) + "\n");
  if (!f.report.empty()) {
    train::ReportInputs in;
    in.title = "vidfuse evaluation: " + f.checkpoint;
    in.metrics = m;
    in.class_names = sets.class_names;
    in.config = train::to_json(trained.config);
    train::write_html_report(f.report, in);
  }
  if (f.json) {
    std::cout << j.dump() << "\n";
  } else {
    std::printf("%s (%s, step %lld) on %s: %lld videos\n", f.checkpoint.c_str(),
                models::arch_name(trained.config.model.arch).c_str(),
                static_cast<long long>(trained.step), data.val.c_str(),
                static_cast<long long>(m.count));
    std::printf("top1 %.4f  top5 %.4f  mean-class %.4f  loss %.4f\n", m.top1, m.top5,
                m.mean_class_accuracy, m.loss);
  }
  return 0;
}

std::function<int()> setup_eval(CLI::App& sub) {
  auto f = std::make_shared<EvalFlags>();
  sub.add_option("--checkpoint", f->checkpoint, "Training checkpoint (checkpoint-best.safetensors)")
      ->required();
  sub.add_option("--manifest", f->manifest, "Manifest to evaluate on (default: the training val)");
  sub.add_option("--store", f->store, "Feature store (default: the training store)");
  sub.add_option("--videos", f->videos, "Folder the manifest's ids resolve in");
  sub.add_option("--output", f->output, "Write the metrics (per-class, confusion) as JSON here");
  sub.add_option("--report", f->report, "Write an HTML report here");
  sub.add_option("--batch-size", f->batch_size, "Evaluation batch size");
  sub.add_option("--device", f->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
      ->capture_default_str();
  sub.add_flag("--json", f->json, "Print the metrics as one JSON object");
  return [f] { return run_eval(*f); };
}

}  // namespace

VIDFUSE_COMMAND("eval", "Evaluate a trained model on a feature store", setup_eval);
