// `vidfuse predict --checkpoint CKPT VIDEO...`: top-k classes of each video. The video goes through
// the same extraction the training store was built with (read from <store>/extract.json: sampling,
// sizes, pooling, backbones; or, for a model trained from videos, from its saved data.extract),
// then the trained fusion model. A video that cannot be read is
// reported and the others are still predicted; the exit status says whether any failed.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_dataset.h"
#include "vidfuse/models/backbones.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/train/trainer.h"

namespace {

using namespace vidfuse;
namespace fs = std::filesystem;
using nlohmann::json;

struct PredictFlags {
  std::string checkpoint, store, dinov3, i3d;
  std::vector<std::string> videos;
  int64_t top_k = 5;
  bool json = false;
};

// A scratch folder for the videos' features, removed on exit.
struct ScratchStore {
  ScratchStore() {
    std::string tmpl = (fs::temp_directory_path() / "vidfuse-predict-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw Error("cannot create a temporary folder for the features");
    path = tmpl;
  }
  ~ScratchStore() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  std::string path;
};

int run_predict(const PredictFlags& f) {
  auto trained = train::load_trained_model(f.checkpoint);
  // A model trained from videos carries its resolved settings in its config; one trained on a
  // store finds them in the store's extract.json.
  const bool from_videos = f.store.empty() && trained.config.data.source == "videos";
  const std::string settings_store = from_videos ? std::string("the checkpoint's data.extract")
                                     : f.store.empty() ? trained.config.data.store
                                                       : f.store;
  data::ExtractRecipe recipe = from_videos ? train::video_extract_recipe(trained.config.data)
                                           : data::read_extract_recipe(settings_store);
  const std::string streams =
      train::streams_for(trained.config.model.arch, trained.config.data.streams);
  const bool semantic = streams != "motion", motion = streams != "semantic";

  // Only the streams the model reads, with the backbones given on the command line if any.
  if (semantic && !f.dinov3.empty()) recipe.dinov3 = f.dinov3;
  if (motion && !f.i3d.empty()) recipe.i3d = f.i3d;
  if (semantic && recipe.dinov3.empty())
    throw Error(settings_store + " has no semantic stream; the model needs one");
  if (motion && recipe.i3d.empty())
    throw Error(settings_store + " has no motion stream; the model needs one");
  if (!semantic) recipe.dinov3.clear();
  if (!motion) recipe.i3d.clear();
  recipe.flow_i3d.clear();
  recipe.storage_dtype = torch::kFloat32;  // nothing is kept: no reason to round
  data::ExtractModels models;
  if (semantic) models.dinov3 = models::dinov3_from_spec(recipe.dinov3);
  if (motion) models.i3d = models::i3d_from_spec(recipe.i3d);

  ScratchStore scratch;
  data::Manifest manifest;
  manifest.source = "command line";
  for (size_t i = 0; i < f.videos.size(); ++i)
    manifest.videos.push_back({"video-" + std::to_string(i), f.videos[i], -1});
  data::ExtractRun run;
  run.store_dir = scratch.path;
  run.progress = data::ProgressMode::Off;
  std::ostringstream log;
  run.log = &log;
  data::extract_features(manifest, models, recipe, run);

  std::map<std::string, std::string> errors;
  for (const auto& failure : data::read_failures(scratch.path)) errors[failure.id] = failure.error;
  data::StoreDataset features(scratch.path, manifest, semantic, motion);
  const auto& names = trained.class_names;
  int status = 0;
  torch::NoGradGuard no_grad;
  int64_t row = 0;
  for (size_t i = 0; i < manifest.videos.size(); ++i) {
    const auto& v = manifest.videos[i];
    json out = {{"video", v.path}};
    if (row >= features.size() || features.entry(row).id != v.id) {
      status = 1;
      auto it = errors.find(v.id);
      out["error"] = it != errors.end() ? it->second : v.path + ": no features were extracted";
    } else {
      auto batch = data::load_batch(features, {row++});
      auto probs = torch::softmax(trained.model->forward(batch.input), -1)[0];
      const int64_t k = std::min<int64_t>(f.top_k, probs.size(0));
      auto top = probs.topk(k);
      json classes = json::array();
      for (int64_t j = 0; j < k; ++j) {
        const int64_t c = std::get<1>(top)[j].item<int64_t>();
        classes.push_back({{"class", c},
                           {"name", c < static_cast<int64_t>(names.size()) ? names[c] : ""},
                           {"score", std::get<0>(top)[j].item<double>()}});
      }
      out["top"] = classes;
    }
    if (f.json) {
      std::cout << out.dump() << "\n";
    } else if (out.contains("error")) {
      std::cerr << "vidfuse: error: " << out["error"].get<std::string>() << "\n";
    } else {
      std::printf("%s\n", v.path.c_str());
      for (const auto& c : out["top"])
        std::printf("  %6.2f%%  %s\n", 100 * c["score"].get<double>(),
                    c["name"].get<std::string>().empty()
                        ? ("class " + std::to_string(c["class"].get<int64_t>())).c_str()
                        : c["name"].get<std::string>().c_str());
    }
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
  return [f] { return run_predict(*f); };
}

}  // namespace

VIDFUSE_COMMAND("predict", "Top-k classes of videos with a trained model", setup_predict);
