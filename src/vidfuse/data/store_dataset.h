// A feature store read back as a training set: the videos of a manifest, their features from
// `<store>/<id>.safetensors`, their labels from the manifest.
#pragma once
#include <string>
#include <vector>

#include "vidfuse/data/dataset.h"
#include "vidfuse/data/manifest.h"

namespace vidfuse::data {

class StoreDataset : public Dataset {
 public:
  // Keeps the manifest's videos whose store file exists (the others are counted in missing(); the
  // existence check is one stat per video, the file is read only in get()). `semantic` / `motion`
  // choose which streams get() loads. Throws vidfuse::Error when the store folder does not exist.
  StoreDataset(const std::string& store_dir, const Manifest& manifest, bool semantic = true,
               bool motion = true);

  int64_t size() const override { return static_cast<int64_t>(videos_.size()); }
  // semantic [T,h,w,C], semantic_cls [T,C], motion [1024,T',H',W'], all float32; the label from the
  // manifest. Reads the file anew on every call (no shared state): safe from any thread. Errors
  // name the file.
  Sample get(int64_t index) const override;
  int64_t label(int64_t index) const override { return entry(index).label; }
  std::vector<std::string> class_names() const override { return class_names_; }

  int64_t missing() const { return missing_; }
  const VideoEntry& entry(int64_t index) const { return videos_.at(static_cast<size_t>(index)); }
  const std::string& store_dir() const { return store_dir_; }

 private:
  std::string store_dir_;
  std::vector<VideoEntry> videos_;
  std::vector<std::string> class_names_;
  bool semantic_, motion_;
  int64_t missing_ = 0;
};

}  // namespace vidfuse::data
