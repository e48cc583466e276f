#include "vidfuse/train/train_data.h"

#include <algorithm>

#include "vidfuse/core/error.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/data/store_dataset.h"

namespace vidfuse::train {

std::string streams_for(models::FusionArch arch, const std::string& requested) {
  if (arch == models::FusionArch::kSemantic) return "semantic";
  if (arch == models::FusionArch::kMotion) return "motion";
  return requested;
}

namespace {

std::shared_ptr<const Dataset> open_split(const DataConfig& data, const std::string& manifest_path,
                                          const std::string& streams, const std::string& split,
                                          std::vector<std::string>& class_names,
                                          std::vector<std::string>& notes) {
  if (manifest_path.empty()) return nullptr;
  if (data.store.empty())
    throw Error("data.store is not set: train from a feature store written by `vidfuse extract`");
  auto manifest = data::read_manifest(manifest_path, data.videos);
  auto set = std::make_shared<data::StoreDataset>(data.store, manifest, streams != "motion",
                                                  streams != "semantic");
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

TrainData open_train_data(const DataConfig& data, models::FusionArch arch) {
  TrainData out;
  const std::string streams = streams_for(arch, data.streams);
  out.train = open_split(data, data.train, streams, "train", out.class_names, out.notes);
  out.val = open_split(data, data.val, streams, "validation", out.class_names, out.notes);
  return out;
}

void fit_model_to_data(models::FusionConfig& model, const Dataset& data,
                       const std::vector<std::string>& class_names) {
  const Sample s = data.get(0);
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
    for (int64_t i = 0; i < data.size(); ++i) max_label = std::max(max_label, data.get(i).label);
    if (max_label < 0) throw Error("the training data have no labels");
    model.num_classes = max_label + 1;
  }
}

}  // namespace vidfuse::train
