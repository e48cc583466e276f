#include "vidfuse/train/train_data.h"

#include <algorithm>
#include <filesystem>

#include "vidfuse/core/error.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/data/store_dataset.h"
#include "vidfuse/data/video_dataset.h"
#include "vidfuse/models/backbones.h"

namespace vidfuse::train {

std::string streams_for(models::FusionArch arch, const std::string& requested) {
  if (arch == models::FusionArch::kSemantic) return "semantic";
  if (arch == models::FusionArch::kMotion) return "motion";
  return requested;
}

namespace {

std::shared_ptr<const data::Dataset> open_split(const DataConfig& data,
                                                const std::string& manifest_path,
                                                const std::string& streams,
                                                const std::string& split,
                                                std::vector<std::string>& class_names,
                                                std::vector<std::string>& notes) {
  if (manifest_path.empty()) return nullptr;
  if (data.store.empty())
    throw Error("data.store is not set: train from a feature store written by `vidfuse extract`");
  auto manifest = data::read_manifest(manifest_path, data.videos);
  // Features stay in their stored dtype (fp16/bf16) until the trainer casts them on the device.
  auto set = std::make_shared<data::StoreDataset>(data.store, manifest, streams != "motion",
                                                  streams != "semantic", /*stored_dtype=*/true);
  if (set->size() == 0)
    throw Error(data.store + ": none of the " + std::to_string(manifest.videos.size()) + " " +
                split + " videos of " + manifest_path +
                " is in the store (run `vidfuse extract` on that manifest first)");
  if (set->missing() > 0)
    notes.push_back(std::to_string(set->missing()) + " of " +
                    std::to_string(manifest.videos.size()) + " " + split +
                    " videos are not in the store and are left out");
  if (class_names.empty()) class_names = manifest.class_names;
  return set;
}

}  // namespace

data::ExtractRecipe video_extract_recipe(const DataConfig& data) {
  nlohmann::json base = data::to_json(data::ExtractRecipe{});
  if (!data.store.empty() && std::filesystem::exists(data::extract_recipe_path(data.store)))
    base = data::to_json(data::read_extract_recipe(data.store));
  base.merge_patch(data.extract);
  return data::extract_recipe_from_json(base, "data.extract");
}

namespace {

// The backbones both video splits share (built once: loading a real checkpoint takes seconds).
struct Backbones {
  models::DinoV3ViT dinov3{nullptr};
  models::InceptionI3d i3d{nullptr};
};

Backbones open_backbones(const data::ExtractRecipe& settings, const std::string& streams,
                         const std::string& device) {
  Backbones b;
  if (streams != "motion") {
    if (settings.dinov3.empty())
      throw Error(
          "data.extract.dinov3 is not set: name the DINOv3 checkpoint (or \"builtin\") "
          "the semantic stream runs, or a data.store whose extract.json records it");
    b.dinov3 = models::dinov3_from_spec(settings.dinov3);
    b.dinov3->to(torch::Device(device));
    b.dinov3->fuse_for_inference();
  }
  if (streams != "semantic") {
    if (settings.i3d.empty())
      throw Error(
          "data.extract.i3d is not set: name the I3D checkpoint (or \"builtin\") the "
          "motion stream runs, or a data.store whose extract.json records it");
    b.i3d = models::i3d_from_spec(settings.i3d);
    b.i3d->to(torch::Device(device));
    b.i3d->fuse_for_inference(torch::kFloat32);
  }
  return b;
}

std::shared_ptr<const data::Dataset> open_video_split(const DataConfig& data,
                                                      const data::ExtractRecipe& settings,
                                                      const Backbones& backbones,
                                                      const std::string& manifest_path,
                                                      const std::string& split, int64_t seed,
                                                      std::vector<std::string>& class_names) {
  if (manifest_path.empty()) return nullptr;
  auto manifest = data::read_manifest(manifest_path, data.videos);
  if (manifest.videos.empty()) throw Error(manifest_path + ": no videos in the " + split + " set");
  data::VideoDatasetOptions o;
  o.recipe = settings;
  o.training = split == "train" && data.augment.enabled;
  o.augment = data.augment;
  o.seed = static_cast<uint64_t>(seed);
  // Substituting another video would bias validation metrics: only training skips.
  o.skip_bad = split == "train" && data.bad_videos == "skip";
  if (class_names.empty()) class_names = manifest.class_names;
  return std::make_shared<data::VideoDataset>(std::move(manifest), backbones.dinov3, backbones.i3d,
                                              o);
}

}  // namespace

TrainData open_train_data(const DataConfig& data, models::FusionArch arch, int64_t seed,
                          const std::string& device) {
  TrainData out;
  const std::string streams = streams_for(arch, data.streams);
  if (data.source == "videos") {
    data::ExtractRecipe settings = video_extract_recipe(data);
    if (!data.train.empty() || !data.val.empty()) {
      const Backbones backbones = open_backbones(settings, streams, device);
      out.train =
          open_video_split(data, settings, backbones, data.train, "train", seed, out.class_names);
      out.val = open_video_split(data, settings, backbones, data.val, "validation", seed,
                                 out.class_names);
    }
    out.extract = std::move(settings);
    return out;
  }
  if (data.source != "store")
    throw Error("data.source must be \"store\" or \"videos\", got \"" + data.source + "\"");
  out.train = open_split(data, data.train, streams, "train", out.class_names, out.notes);
  out.val = open_split(data, data.val, streams, "validation", out.class_names, out.notes);
  return out;
}

void fit_model_to_data(models::FusionConfig& model, const data::Dataset& data,
                       const std::vector<std::string>& class_names) {
  const data::Sample s = data.get(0);
  if (s.semantic.defined()) {
    if (s.semantic.dim() != 4)
      throw Error("semantic features must be [T, h, w, C], got " + c10::str(s.semantic.sizes()));
    model.semantic_dim = s.semantic.size(3);
    model.semantic_grid = {s.semantic.size(0), s.semantic.size(1), s.semantic.size(2)};
    model.use_cls = model.use_cls && s.semantic_cls.defined();
  }
  if (s.motion.defined()) {
    if (s.motion.dim() != 4)
      throw Error("motion features must be [C, T, H, W], got " + c10::str(s.motion.sizes()));
    model.motion_dim = s.motion.size(0);
    model.motion_grid = {s.motion.size(1), s.motion.size(2), s.motion.size(3)};
  }
  if (!class_names.empty()) {
    model.num_classes = static_cast<int64_t>(class_names.size());
  } else {
    int64_t max_label = -1;
    for (int64_t i = 0; i < data.size(); ++i) max_label = std::max(max_label, data.label(i));
    if (max_label < 0) throw Error("the training data have no labels");
    model.num_classes = max_label + 1;
  }
}

namespace {

// Running per-channel sums in float64 (features are fp16/bf16 on disk; fp32 sums over millions
// of tokens would lose the small across-video differences this is meant to expose).
struct ChannelMoments {
  torch::Tensor sum, sum_sq;
  int64_t count = 0;
  // tokens [N, C]
  void add(const torch::Tensor& tokens) {
    auto t = tokens.to(torch::kDouble);
    if (!sum.defined()) {
      sum = torch::zeros({t.size(1)}, t.options());
      sum_sq = torch::zeros({t.size(1)}, t.options());
    }
    sum += t.sum(0);
    sum_sq += t.pow(2).sum(0);
    count += t.size(0);
  }
  void apply(models::StreamEmbed& embed) const {
    if (!embed || count == 0) return;
    auto mean = sum / count;
    auto var = (sum_sq / count - mean.pow(2)).clamp_min(0);
    auto floor = 0.01 * var.mean().sqrt();
    auto std = torch::maximum(var.sqrt(), floor.expand_as(var));
    if (floor.item<double>() == 0) std.fill_(1);  // constant stream: nothing to scale
    const auto to = embed->input_mean.options();
    embed->set_input_statistics(mean.to(to), std.to(to));
  }
};

}  // namespace

void fit_input_statistics(models::FusionModelImpl& model, const data::Dataset& data,
                          int64_t max_samples) {
  const int64_t n = std::min<int64_t>(data.size(), std::max<int64_t>(1, max_samples));
  ChannelMoments semantic, motion;
  for (int64_t i = 0; i < n; ++i) {
    const data::Sample s = data.get(i * data.size() / n);
    if (model.semantic_embed && s.semantic.defined()) {
      semantic.add(s.semantic.reshape({-1, s.semantic.size(-1)}));
      if (s.semantic_cls.defined() && model.config().use_cls) semantic.add(s.semantic_cls);
    }
    if (model.motion_embed && s.motion.defined())
      motion.add(s.motion.flatten(1).t());  // [C, T, H, W] -> [THW, C]
  }
  semantic.apply(model.semantic_embed);
  motion.apply(model.motion_embed);
}

}  // namespace vidfuse::train
