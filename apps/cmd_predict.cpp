// `vidfuse predict --checkpoint CKPT VIDEO...`: top-k classes of each video. The video goes through
// the same extraction the training store was built with (read from <store>/extract.json: sampling,
// sizes, pooling, backbones; or, for a model trained from videos, from its saved data.extract),
// then the trained fusion model. A video that cannot be read is
// reported and the others are still predicted; the exit status says whether any failed.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "prediction_output.h"
#include "vidfuse/api/classifier.h"
#include "vidfuse/core/device.h"

namespace {

using namespace vidfuse;

struct PredictFlags {
  std::string checkpoint, store, dinov3, i3d, device = "auto";
  std::vector<std::string> videos;
  int64_t top_k = 5;
  bool json = false;
};

int run_predict(const PredictFlags& f) {
  ClassifierOptions options;
  options.device = announce_device(f.device, "predict");
  options.store = f.store;
  options.dinov3 = f.dinov3;
  options.i3d = f.i3d;
  const Classifier classifier(f.checkpoint, options);
  int status = 0;
  for (const Prediction& p : classifier.predict(f.videos, f.top_k)) {
    if (!p.error.empty()) status = 1;
    cli::print_prediction(p.video, p.top, p.error, f.json);
  }
  return status;
}

std::function<int()> setup_predict(CLI::App& sub) {
  auto f = std::make_shared<PredictFlags>();
  sub.add_option("VIDEO", f->videos, "Video files, frame folders or images")->required();
  sub.add_option("--checkpoint", f->checkpoint, "Training checkpoint (checkpoint-best.safetensors)")
      ->required();
  sub.add_option("--store", f->store,
                 "Store whose extract.json gives the extraction settings (default: the "
                 "training store)");
  sub.add_option("--dinov3", f->dinov3, "DINOv3 weights (default: as recorded in the store)");
  sub.add_option("--i3d", f->i3d, "I3D weights (default: as recorded in the store)");
  sub.add_option("--top-k", f->top_k, "Classes to show per video")->capture_default_str();
  sub.add_flag("--json", f->json, "One JSON object per video");
  sub.add_option("--device", f->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
      ->capture_default_str();
  return [f] { return run_predict(*f); };
}

}  // namespace

VIDFUSE_COMMAND("predict", "Top-k classes of videos with a trained model", setup_predict);
