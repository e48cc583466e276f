#include "vidfuse/api/classifier.h"

#include <stdlib.h>
#include <torch/torch.h>

#include <filesystem>
#include <mutex>
#include <sstream>

#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_dataset.h"
#include "vidfuse/models/backbones.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/train/trainer.h"

namespace vidfuse {

namespace fs = std::filesystem;

namespace {

// A scratch folder for the videos' features, removed when done.
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

}  // namespace

struct Classifier::Impl {
  std::string checkpoint;
  ClassifierOptions options;
  torch::Device device{torch::kCPU};
  train::TrainedModel trained;
  bool semantic = true, motion = true;
  mutable std::mutex forward_mutex;  // one forward at a time (each uses every core)

  // The extraction settings of the training data: a model trained from videos carries them in
  // its config; one trained on a store finds them in the store's extract.json.
  data::ExtractRecipe recipe() const {
    const auto& data = trained.config.data;
    const bool from_videos = options.store.empty() && data.source == "videos";
    const std::string where = from_videos             ? std::string("the checkpoint's data.extract")
                              : options.store.empty() ? data.store
                                                      : options.store;
    data::ExtractRecipe r =
        from_videos ? train::video_extract_recipe(data) : data::read_extract_recipe(where);
    // Only the streams the model reads, with the backbones given in the options if any.
    if (semantic && !options.dinov3.empty()) r.dinov3 = options.dinov3;
    if (motion && !options.i3d.empty()) r.i3d = options.i3d;
    if (semantic && r.dinov3.empty())
      throw Error(where + " has no semantic stream; the model in " + checkpoint + " needs one");
    if (motion && r.i3d.empty())
      throw Error(where + " has no motion stream; the model in " + checkpoint + " needs one");
    if (!semantic) r.dinov3.clear();
    if (!motion) r.i3d.clear();
    r.flow_i3d.clear();
    r.storage_dtype = torch::kFloat32;  // nothing is kept: no reason to round
    return r;
  }

  std::vector<ClassScore> top(const torch::Tensor& logits_row, int64_t k) const {
    const torch::Tensor probs = torch::softmax(logits_row.to(torch::kFloat32).cpu(), -1);
    k = std::max<int64_t>(1, std::min<int64_t>(k, probs.size(0)));
    auto [values, indices] = probs.topk(k);
    std::vector<ClassScore> out;
    for (int64_t j = 0; j < k; ++j) {
      const int64_t c = indices[j].item<int64_t>();
      const auto& names = trained.class_names;
      out.push_back(
          {c, c < static_cast<int64_t>(names.size()) ? names[c] : "class " + std::to_string(c),
           values[j].item<double>()});
    }
    return out;
  }
};

Classifier::Classifier(const std::string& checkpoint, ClassifierOptions options)
    : impl_(std::make_shared<Impl>()) {
  Impl& m = *impl_;
  m.checkpoint = checkpoint;
  m.options = options;
  m.device = torch::Device(resolve_device(options.device).device);
  m.options.device = m.device.str();
  m.trained = train::load_trained_model(checkpoint);
  m.trained.model->to(m.device);
  m.trained.model->eval();
  const std::string streams =
      train::streams_for(m.trained.config.model.arch, m.trained.config.data.streams);
  m.semantic = streams != "motion";
  m.motion = streams != "semantic";
}

at::Tensor Classifier::logits(const std::map<std::string, at::Tensor>& features) const {
  Impl& m = *impl_;
  auto get = [&](const char* name, bool needed, int64_t sample_rank) {
    auto it = features.find(name);
    if (it == features.end() || !it->second.defined()) {
      if (needed)
        throw InvalidArgument(std::string("classifier: the model in ") + m.checkpoint +
                              " reads \"" + name + "\", which the features lack");
      return torch::Tensor();
    }
    torch::Tensor t = it->second;
    if (t.dim() == sample_rank) t = t.unsqueeze(0);  // one sample, as a store reader gives it
    if (t.dim() != sample_rank + 1)
      throw InvalidArgument(std::string("classifier: \"") + name + "\" must have " +
                            std::to_string(sample_rank) + " dimensions (one sample) or " +
                            std::to_string(sample_rank + 1) + " (a batch), got " +
                            c10::str(t.sizes()));
    return t.to(m.device, torch::kFloat32);
  };
  models::FusionInput input;
  input.semantic = get("semantic", m.semantic, 4);
  input.semantic_cls = get("semantic_cls", false, 2);
  input.motion = get("motion", m.motion, 4);
  torch::NoGradGuard no_grad;
  std::lock_guard<std::mutex> lock(m.forward_mutex);
  return m.trained.model->forward(input);
}

std::vector<Prediction> Classifier::predict(const std::vector<std::string>& videos,
                                            int64_t k) const {
  Impl& m = *impl_;
  if (videos.empty()) throw InvalidArgument("predict: no videos given (an empty list)");
  const data::ExtractRecipe recipe = m.recipe();
  data::ExtractModels models;
  if (m.semantic) {
    models.dinov3 = models::dinov3_from_spec(recipe.dinov3);
    models.dinov3->to(m.device);
  }
  if (m.motion) {
    models.i3d = models::i3d_from_spec(recipe.i3d);
    models.i3d->to(m.device);
  }

  ScratchStore scratch;
  data::Manifest manifest;
  manifest.source = "predict";
  for (size_t i = 0; i < videos.size(); ++i)
    manifest.videos.push_back({"video-" + std::to_string(i), videos[i], -1});
  data::ExtractRun run;
  run.store_dir = scratch.path;
  run.progress = data::ProgressMode::Off;
  std::ostringstream log;
  run.log = &log;
  data::extract_features(manifest, models, recipe, run);

  std::map<std::string, std::string> errors;
  for (const auto& failure : data::read_failures(scratch.path)) errors[failure.id] = failure.error;
  data::StoreDataset features(scratch.path, manifest, m.semantic, m.motion);
  std::vector<Prediction> out;
  int64_t row = 0;
  for (const auto& v : manifest.videos) {
    Prediction p;
    p.video = v.path;
    if (row >= features.size() || features.entry(row).id != v.id) {
      auto it = errors.find(v.id);
      p.error = it != errors.end() ? it->second : v.path + ": no features were extracted";
    } else {
      const data::Batch batch = data::load_batch(features, {row++});
      torch::Tensor logits;
      {
        torch::NoGradGuard no_grad;
        std::lock_guard<std::mutex> lock(m.forward_mutex);
        logits = m.trained.model->forward(batch.input.to(m.device));
      }
      p.top = m.top(logits[0], k);
    }
    out.push_back(std::move(p));
  }
  return out;
}

const std::vector<std::string>& Classifier::class_names() const {
  return impl_->trained.class_names;
}
int64_t Classifier::num_classes() const { return impl_->trained.config.model.num_classes; }
std::string Classifier::arch() const { return models::arch_name(impl_->trained.config.model.arch); }
const std::string& Classifier::device() const { return impl_->options.device; }

}  // namespace vidfuse
