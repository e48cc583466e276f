#include "vidfuse/data/dataset.h"

#include <sstream>

#include "vidfuse/core/error.h"
#include "vidfuse/core/shape_text.h"

namespace vidfuse::data {

TensorDataset::TensorDataset(torch::Tensor semantic, torch::Tensor semantic_cls,
                             torch::Tensor motion, torch::Tensor labels,
                             std::vector<std::string> class_names)
    : semantic_(std::move(semantic)),
      semantic_cls_(std::move(semantic_cls)),
      motion_(std::move(motion)),
      labels_(std::move(labels)),
      class_names_(std::move(class_names)) {
  if (!labels_.defined() || labels_.dim() != 1)
    throw Error("TensorDataset: labels must be a 1-D tensor");
  labels_ = labels_.to(torch::kLong);
  const int64_t n = labels_.size(0);
  for (auto [name, t] : {std::pair<const char*, const torch::Tensor*>{"semantic", &semantic_},
                         {"semantic_cls", &semantic_cls_},
                         {"motion", &motion_}})
    if (t->defined() && t->size(0) != n)
      throw Error(std::string("TensorDataset: ") + name + " has " + std::to_string(t->size(0)) +
                  " samples but there are " + std::to_string(n) + " labels");
}

Sample TensorDataset::get(int64_t i) const {
  if (i < 0 || i >= size())
    throw Error("TensorDataset: index " + std::to_string(i) + " out of range [0, " +
                std::to_string(size()) + ")");
  Sample s;
  if (semantic_.defined()) s.semantic = semantic_[i];
  if (semantic_cls_.defined()) s.semantic_cls = semantic_cls_[i];
  if (motion_.defined()) s.motion = motion_[i];
  s.label = labels_[i].item<int64_t>();
  return s;
}

namespace {
std::string from(const Sample& s) { return s.source.empty() ? "" : " (" + s.source + ")"; }

torch::Tensor stack_field(const std::vector<Sample>& samples, const std::vector<int64_t>& indices,
                          torch::Tensor Sample::*field, const char* name) {
  const auto& first = samples.front().*field;
  std::vector<torch::Tensor> parts;
  parts.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& t = samples[i].*field;
    if (t.defined() != first.defined() || (t.defined() && t.sizes() != first.sizes()))
      throw Error("dataset sample " + std::to_string(indices[i]) + from(samples[i]) + ": " + name +
                  " has shape " + shape_text(t) + " but sample " + std::to_string(indices[0]) +
                  from(samples[0]) + " has " + shape_text(first) +
                  " (all samples of a batch must have the same shape)");
    if (t.defined()) parts.push_back(t);
  }
  return first.defined() ? torch::stack(parts) : torch::Tensor();
}
}  // namespace

Batch collate(const std::vector<Sample>& samples, const std::vector<int64_t>& indices) {
  if (samples.empty()) throw Error("collate: empty batch");
  Batch b;
  b.input.semantic = stack_field(samples, indices, &Sample::semantic, "semantic");
  b.input.semantic_cls = stack_field(samples, indices, &Sample::semantic_cls, "semantic_cls");
  b.input.motion = stack_field(samples, indices, &Sample::motion, "motion");
  std::vector<int64_t> labels;
  labels.reserve(samples.size());
  for (const auto& s : samples) labels.push_back(s.label);
  b.labels = torch::tensor(labels, torch::kLong);
  b.indices = indices;
  return b;
}

Batch load_batch(const Dataset& data, const std::vector<int64_t>& indices) {
  std::vector<Sample> samples;
  samples.reserve(indices.size());
  for (int64_t i : indices) samples.push_back(data.get(i));
  return collate(samples, indices);
}

}  // namespace vidfuse::data
