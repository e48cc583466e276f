// Synthetic stream features for the fusion and training tests: small shapes, deterministic.
#pragma once
#include <ATen/CPUGeneratorImpl.h>
#include <torch/torch.h>

#include <memory>

#include "vidfuse/data/dataset.h"
#include "vidfuse/models/fusion_config.h"

namespace vidfuse::fusion_test {

// A tiny fusion config matching the synthetic grids below.
inline models::FusionConfig tiny_fusion_config(int64_t num_classes = 2) {
  models::FusionConfig c;
  c.semantic_dim = 8;
  c.motion_dim = 8;
  c.semantic_grid = {2, 4, 4};
  c.motion_grid = {2, 2, 2};
  c.use_cls = false;
  c.semantic_pool = 1;
  c.width = 32;
  c.heads = 4;
  c.depth = 1;
  c.mlp_ratio = 2;
  c.pool_queries = 1;
  c.dropout = 0;
  c.num_classes = num_classes;
  return c;
}

// Label = appearance XOR motion. Every semantic token carries +u or -u (appearance bit a), every
// motion token +v or -v (motion bit m), both under unit Gaussian noise; the label is a ^ m, so
// neither stream alone says anything about it, and a classifier that is linear in separately
// pooled stream features (late fusion) cannot represent it either.
inline std::shared_ptr<data::TensorDataset> xor_dataset(int64_t n, uint64_t seed,
                                                        double signal = 0.6) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  const int64_t Cs = 8, Cm = 8;
  auto fixed = at::make_generator<at::CPUGeneratorImpl>(12345);  // same directions for every split
  auto u = at::randn({Cs}, fixed) * signal;
  auto v = at::randn({Cm}, fixed) * signal;
  auto a = at::randint(0, 2, {n}, gen, torch::kLong);
  auto m = at::randint(0, 2, {n}, gen, torch::kLong);
  auto sign_a = (a * 2 - 1).to(torch::kFloat);
  auto sign_m = (m * 2 - 1).to(torch::kFloat);
  auto semantic = at::randn({n, 2, 4, 4, Cs}, gen) + sign_a.view({n, 1, 1, 1, 1}) * u;
  auto motion = at::randn({n, Cm, 2, 2, 2}, gen) + (sign_m.view({n, 1}) * v).view({n, Cm, 1, 1, 1});
  auto labels = a.bitwise_xor(m);
  return std::make_shared<data::TensorDataset>(semantic, torch::Tensor(), motion, labels,
                                               std::vector<std::string>{"same", "different"});
}

// Random features with random labels (for memorisation), with per-frame CLS tokens.
inline std::shared_ptr<data::TensorDataset> random_dataset(int64_t n, int64_t num_classes,
                                                           uint64_t seed) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto semantic = at::randn({n, 2, 4, 4, 8}, gen);
  auto cls = at::randn({n, 2, 8}, gen);
  auto motion = at::randn({n, 8, 2, 2, 2}, gen);
  auto labels = at::randint(0, num_classes, {n}, gen, torch::kLong);
  return std::make_shared<data::TensorDataset>(semantic, cls, motion, labels);
}

}  // namespace vidfuse::fusion_test
