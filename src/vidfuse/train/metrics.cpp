#include "vidfuse/train/metrics.h"

#include <algorithm>

#include "vidfuse/core/error.h"
#include "vidfuse/data/batch_loader.h"

namespace vidfuse::train {

void check_labels(const torch::Tensor& labels, int64_t k, const std::string& where) {
  if (labels.numel() == 0) return;
  auto cpu = labels.to(torch::kCPU, torch::kLong);
  const int64_t lo = cpu.min().item<int64_t>(), hi = cpu.max().item<int64_t>();
  if (lo < 0 || hi >= k)
    throw Error(where + ": label " + std::to_string(lo < 0 ? lo : hi) + " is outside [0, " +
                std::to_string(k) + ") (the model has " + std::to_string(k) + " classes)");
}

MetricsAccumulator::MetricsAccumulator(int64_t k)
    : k_(k), sums_(torch::zeros({k * k + 3}, torch::kDouble)) {}

void MetricsAccumulator::add(const torch::Tensor& logits, const torch::Tensor& labels) {
  torch::NoGradGuard no_grad;
  check_labels(labels, k_, "evaluation");
  auto l = logits.detach().to(torch::kCPU, torch::kFloat);
  auto y = labels.to(torch::kCPU, torch::kLong);
  const int64_t top = std::min<int64_t>(5, k_);
  auto pred = l.argmax(1);
  auto topk = std::get<1>(l.topk(top, 1));
  auto hits5 = topk.eq(y.unsqueeze(1)).any(1).sum().item<double>();
  auto loss = torch::nn::functional::cross_entropy(
                  l.to(torch::kDouble), y,
                  torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
                  .item<double>();
  auto confusion = sums_.narrow(0, 0, k_ * k_);
  confusion.index_add_(0, y * k_ + pred, torch::ones({y.size(0)}, torch::kDouble));
  sums_[k_ * k_] += loss;
  sums_[k_ * k_ + 1] += hits5;
  sums_[k_ * k_ + 2] += double(y.size(0));
}

void MetricsAccumulator::all_reduce(Distributed& dist) {
  std::vector<torch::Tensor> t{sums_};
  dist.all_reduce_sum(t);
}

Metrics MetricsAccumulator::finish() const {
  Metrics m;
  m.num_classes = k_;
  m.confusion = sums_.narrow(0, 0, k_ * k_).view({k_, k_}).round().to(torch::kLong);
  m.count = static_cast<int64_t>(sums_[k_ * k_ + 2].item<double>());
  if (m.count == 0) return m;
  m.loss = sums_[k_ * k_].item<double>() / m.count;
  m.top5 = sums_[k_ * k_ + 1].item<double>() / m.count;
  auto conf = m.confusion.to(torch::kDouble);
  m.top1 = conf.diagonal().sum().item<double>() / m.count;
  auto rows = conf.sum(1);
  auto diag = conf.diagonal();
  double sum = 0;
  int64_t classes_with_samples = 0;
  for (int64_t c = 0; c < k_; ++c) {
    const double n = rows[c].item<double>();
    m.per_class_count.push_back(static_cast<int64_t>(n));
    if (n > 0) {
      const double acc = diag[c].item<double>() / n;
      m.per_class_accuracy.push_back(acc);
      sum += acc;
      ++classes_with_samples;
    } else {
      m.per_class_accuracy.push_back(-1);
    }
  }
  m.mean_class_accuracy = classes_with_samples ? sum / classes_with_samples : 0;
  return m;
}

nlohmann::json to_json(const Metrics& m, const std::vector<std::string>& names) {
  nlohmann::json per_class = nlohmann::json::array();
  for (int64_t c = 0; c < m.num_classes && c < int64_t(m.per_class_accuracy.size()); ++c) {
    nlohmann::json e = {
        {"class", c},
        {"count", m.per_class_count[c]},
        {"accuracy", m.per_class_accuracy[c] < 0 ? nlohmann::json(nullptr)
                                                 : nlohmann::json(m.per_class_accuracy[c])}};
    if (c < int64_t(names.size())) e["name"] = names[c];
    per_class.push_back(e);
  }
  nlohmann::json confusion = nlohmann::json::array();
  if (m.confusion.defined()) {
    auto conf = m.confusion.contiguous();
    const int64_t* p = conf.data_ptr<int64_t>();
    for (int64_t r = 0; r < m.num_classes; ++r)
      confusion.push_back(std::vector<int64_t>(p + r * m.num_classes, p + (r + 1) * m.num_classes));
  }
  return {{"count", m.count},
          {"loss", m.loss},
          {"top1", m.top1},
          {"top5", m.top5},
          {"mean_class_accuracy", m.mean_class_accuracy},
          {"per_class", per_class},
          {"confusion", confusion}};
}

Metrics evaluate(models::FusionModel& model, const data::Dataset& data, const EvalOptions& o) {
  if (o.batch_size < 1) throw Error("evaluate: batch_size must be >= 1");
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  MetricsAccumulator acc(model->config().num_classes);
  const int rank = o.dist ? o.dist->rank() : 0, world = o.dist ? o.dist->world_size() : 1;
  std::vector<int64_t> shard;
  for (int64_t i = rank; i < data.size(); i += world) shard.push_back(i);
  for (size_t begin = 0; begin < shard.size(); begin += o.batch_size) {
    const size_t end = std::min(shard.size(), begin + size_t(o.batch_size));
    data::Batch b =
        data::load_batch(data, std::vector<int64_t>(shard.begin() + begin, shard.begin() + end));
    acc.add(model->forward(
                data::to_device(b.input, o.device, model->parameters().front().scalar_type())),
            b.labels);
  }
  if (o.dist) acc.all_reduce(*o.dist);
  if (was_training) model->train();
  return acc.finish();
}

}  // namespace vidfuse::train
