// AdamW with weight-decay exclusions, the warmup + cosine learning-rate schedule, and the optimizer
// state as named tensors (so checkpoints say which moment belongs to which parameter).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "vidfuse/train/train_config.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::train {

// Parameters split by whether weight decay applies. Decay shrinks weights towards zero, which is
// wrong for norm gains/biases, additive embeddings (position, type, CLS) and pooling queries: they
// are excluded by rule — every tensor of rank <= 1, and any parameter whose own name ends in
// "embed" or is "queries".
struct ParamGroups {
  std::vector<std::string> decay_names, no_decay_names;
  std::vector<torch::Tensor> decay, no_decay;
};
bool excluded_from_weight_decay(const std::string& name, const torch::Tensor& param);
ParamGroups split_weight_decay(const torch::nn::Module& module);

// Group 0 = decay (config.weight_decay), group 1 = no decay.
std::unique_ptr<torch::optim::AdamW> make_adamw(const ParamGroups& groups,
                                                const TrainConfig& config);
void set_learning_rate(torch::optim::Optimizer& optimizer, double lr);

// Linear warmup from lr/warmup to lr, then cosine decay to min_lr at total_steps.
struct CosineSchedule {
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;
  double base_lr = 1e-3;
  double min_lr = 0;
  // The learning rate of update number `step` (0-based).
  double lr(int64_t step) const;
};

// AdamW moments by parameter name: "optimizer.<param>.exp_avg", ".exp_avg_sq", ".step" (int64).
// Parameters that have not been updated yet have no entries.
weights::TensorMap adamw_state(torch::optim::AdamW& optimizer, const ParamGroups& groups);
// Restores what adamw_state wrote; throws vidfuse::Error naming `source` and the parameter on a
// missing entry or a shape mismatch.
void load_adamw_state(torch::optim::AdamW& optimizer, const ParamGroups& groups,
                      const weights::TensorMap& state, const std::string& source);

}  // namespace vidfuse::train
