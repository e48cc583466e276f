#include "vidfuse/data/store_dataset.h"

#include <filesystem>

#include "vidfuse/core/error.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_schema.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::data {

StoreDataset::StoreDataset(const std::string& store_dir, const Manifest& manifest, bool semantic,
                           bool motion)
    : store_dir_(store_dir),
      class_names_(manifest.class_names),
      semantic_(semantic),
      motion_(motion) {
  if (!std::filesystem::is_directory(store_dir))
    fail_file(store_dir, "feature store folder does not exist");
  if (!semantic && !motion) throw Error("StoreDataset: at least one stream must be selected");
  for (const auto& v : manifest.videos) {
    std::error_code ec;
    if (std::filesystem::is_regular_file(store_file_path(store_dir, v.id), ec))
      videos_.push_back(v);
    else
      ++missing_;
  }
}

Sample StoreDataset::get(int64_t index) const {
  if (index < 0 || index >= size())
    throw Error("StoreDataset: index " + std::to_string(index) + " out of range [0, " +
                std::to_string(size()) + ")");
  const VideoEntry& v = videos_[static_cast<size_t>(index)];
  const std::string path = store_file_path(store_dir_, v.id);
  // A fresh mapping per call: nothing shared between threads, and the mapping is gone once the
  // float32 copies are made.
  weights::SafetensorsFile file(path);
  auto load = [&](const std::string& name) {
    if (!file.contains(name))
      fail_file(path, "no tensor '" + name + "' (was the store extracted with this stream?)");
    return file.get(name, /*zero_copy=*/true).to(torch::kFloat32, false, /*copy=*/true);
  };
  Sample s;
  if (semantic_) {
    s.semantic = load(kSemanticPatch);
    s.semantic_cls = load(kSemanticCls);
  }
  if (motion_) s.motion = load(mixed_5c_tensor(Stream::Motion));
  s.label = v.label;
  return s;
}

}  // namespace vidfuse::data
