#include "vidfuse/api/store.h"

#include "vidfuse/core/error.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/data/store_dataset.h"

namespace vidfuse {

struct FeatureStoreReader::Impl {
  Impl(const std::string& store, const data::Manifest& manifest, bool semantic, bool motion)
      : dataset(store, manifest, semantic, motion) {}
  data::StoreDataset dataset;
};

FeatureStoreReader::FeatureStoreReader(const std::string& store, const std::string& manifest,
                                       const std::string& videos_dir, bool semantic, bool motion)
    : impl_(std::make_shared<const Impl>(store, data::read_manifest(manifest, videos_dir), semantic,
                                         motion)) {}

int64_t FeatureStoreReader::size() const { return impl_->dataset.size(); }

std::map<std::string, at::Tensor> FeatureStoreReader::get(int64_t index) const {
  if (index < 0 || index >= size())
    throw InvalidArgument("feature store: index " + std::to_string(index) + " is out of range (" +
                          std::to_string(size()) + " videos)");
  const data::Sample s = impl_->dataset.get(index);
  std::map<std::string, at::Tensor> out;
  if (s.semantic.defined()) out["semantic"] = s.semantic;
  if (s.semantic_cls.defined()) out["semantic_cls"] = s.semantic_cls;
  if (s.motion.defined()) out["motion"] = s.motion;
  return out;
}

int64_t FeatureStoreReader::label(int64_t index) const { return impl_->dataset.label(index); }
const std::string& FeatureStoreReader::id(int64_t index) const {
  return impl_->dataset.entry(index).id;
}
std::vector<std::string> FeatureStoreReader::class_names() const {
  return impl_->dataset.class_names();
}
int64_t FeatureStoreReader::missing() const { return impl_->dataset.missing(); }

}  // namespace vidfuse
