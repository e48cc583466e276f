#include "vidfuse/train/optimizer.h"

#include <cmath>
#include <type_traits>

#include "vidfuse/core/error.h"
#include "vidfuse/core/shape_text.h"

namespace vidfuse::train {

bool excluded_from_weight_decay(const std::string& name, const torch::Tensor& param) {
  if (param.dim() <= 1) return true;
  const auto dot = name.rfind('.');
  const std::string leaf = dot == std::string::npos ? name : name.substr(dot + 1);
  const std::string suffix = "embed";
  return leaf == "queries" ||
         (leaf.size() >= suffix.size() &&
          leaf.compare(leaf.size() - suffix.size(), suffix.size(), suffix) == 0);
}

ParamGroups split_weight_decay(const torch::nn::Module& module) {
  ParamGroups g;
  for (const auto& item : module.named_parameters(/*recurse=*/true)) {
    if (!item.value().requires_grad()) continue;
    if (excluded_from_weight_decay(item.key(), item.value())) {
      g.no_decay_names.push_back(item.key());
      g.no_decay.push_back(item.value());
    } else {
      g.decay_names.push_back(item.key());
      g.decay.push_back(item.value());
    }
  }
  return g;
}

std::unique_ptr<torch::optim::AdamW> make_adamw(const ParamGroups& groups, const TrainConfig& c) {
  auto options = [&](double wd) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(c.lr)
            .betas(std::make_tuple(c.betas[0], c.betas[1]))
            .eps(c.eps)
            .weight_decay(wd));
  };
  std::vector<torch::optim::OptimizerParamGroup> pg;
  pg.emplace_back(groups.decay, options(c.weight_decay));
  pg.emplace_back(groups.no_decay, options(0.0));
  return std::make_unique<torch::optim::AdamW>(std::move(pg), torch::optim::AdamWOptions(c.lr));
}

void set_learning_rate(torch::optim::Optimizer& optimizer, double lr) {
  for (auto& group : optimizer.param_groups()) group.options().set_lr(lr);
}

double CosineSchedule::lr(int64_t step) const {
  if (step < warmup_steps) return base_lr * double(step + 1) / double(warmup_steps);
  const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps);
  const double progress = std::min(1.0, double(step - warmup_steps) / double(span));
  return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
}

namespace {
// The optimizer's state map is keyed by the parameter's TensorImpl pointer.
void* state_key(const torch::Tensor& p) { return p.unsafeGetTensorImpl(); }

template <typename Fn>
void for_each_named(const ParamGroups& g, Fn fn) {
  for (size_t i = 0; i < g.decay.size(); ++i) fn(g.decay_names[i], g.decay[i]);
  for (size_t i = 0; i < g.no_decay.size(); ++i) fn(g.no_decay_names[i], g.no_decay[i]);
}
}  // namespace

weights::TensorMap adamw_state(torch::optim::AdamW& optimizer, const ParamGroups& groups) {
  weights::TensorMap out;
  auto& state = optimizer.state();
  for_each_named(groups, [&](const std::string& name, const torch::Tensor& p) {
    auto it = state.find(state_key(p));
    if (it == state.end()) return;
    const auto& s = static_cast<const torch::optim::AdamWParamState&>(*it->second);
    const std::string prefix = "optimizer." + name + ".";
    out[prefix + "exp_avg"] = s.exp_avg().detach();
    out[prefix + "exp_avg_sq"] = s.exp_avg_sq().detach();
    out[prefix + "step"] = torch::tensor(s.step(), torch::kLong);
  });
  return out;
}

void load_adamw_state(torch::optim::AdamW& optimizer, const ParamGroups& groups,
                      const weights::TensorMap& tensors, const std::string& source) {
  auto& state = optimizer.state();
  state.clear();
  for_each_named(groups, [&](const std::string& name, const torch::Tensor& p) {
    const std::string prefix = "optimizer." + name + ".";
    auto avg = tensors.find(prefix + "exp_avg");
    auto sq = tensors.find(prefix + "exp_avg_sq");
    auto step = tensors.find(prefix + "step");
    const int present = (avg != tensors.end()) + (sq != tensors.end()) + (step != tensors.end());
    if (present == 0) return;  // not updated yet when the checkpoint was written
    if (present != 3)
      fail_file(source, "optimizer state of \"" + name +
                            "\" is incomplete (need exp_avg, "
                            "exp_avg_sq and step)");
    for (const auto* t : {&avg->second, &sq->second})
      if (t->sizes() != p.sizes())
        fail_file(source, "optimizer state of \"" + name + "\" has shape " + shape_text(*t) +
                              ", the parameter has " + shape_text(p));
    auto s = std::make_unique<torch::optim::AdamWParamState>();
    s->step(step->second.item<int64_t>());
    s->exp_avg(avg->second.to(p.device(), p.scalar_type()).clone());
    s->exp_avg_sq(sq->second.to(p.device(), p.scalar_type()).clone());
    state[state_key(p)] = std::move(s);
  });
}

}  // namespace vidfuse::train
