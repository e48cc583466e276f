#include "vidfuse/train/dataset.h"

#include <sstream>

#include "vidfuse/core/error.h"
#include "vidfuse/core/shape_text.h"

namespace vidfuse::train {

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
torch::Tensor stack_field(const std::vector<Sample>& samples, const std::vector<int64_t>& indices,
                          torch::Tensor Sample::*field, const char* name) {
  const auto& first = samples.front().*field;
  std::vector<torch::Tensor> parts;
  parts.reserve(samples.size());
  for (size_t i = 0; i < samples.size(); ++i) {
    const auto& t = samples[i].*field;
    if (t.defined() != first.defined() || (t.defined() && t.sizes() != first.sizes()))
      throw Error("dataset sample " + std::to_string(indices[i]) + ": " + name + " has shape " +
                  shape_text(t) + " but sample " + std::to_string(indices[0]) + " has " +
                  shape_text(first) + " (all samples of a batch must have the same shape)");
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
  return b;
}

Batch load_batch(const Dataset& data, const std::vector<int64_t>& indices) {
  std::vector<Sample> samples;
  samples.reserve(indices.size());
  for (int64_t i : indices) samples.push_back(data.get(i));
  return collate(samples, indices);
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

void fit_input_statistics(models::FusionModelImpl& model, const Dataset& data,
                          int64_t max_samples) {
  const int64_t n = std::min<int64_t>(data.size(), std::max<int64_t>(1, max_samples));
  ChannelMoments semantic, motion;
  for (int64_t i = 0; i < n; ++i) {
    const Sample s = data.get(i * data.size() / n);
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
