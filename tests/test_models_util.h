// Small backbones for the tests that run whole pipelines (extraction, the integrated video model):
// the real topologies at sizes that take milliseconds.
#pragma once
#include <torch/torch.h>

#include "vidfuse/models/dinov3.h"

namespace vidfuse::test {

// A 2-layer, 32-wide DINOv3 with seeded random weights, in eval mode.
inline models::DinoV3ViT tiny_dinov3() {
  models::DinoV3Config c;
  c.hidden_size = 32;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 2;
  c.intermediate_size = 64;
  torch::manual_seed(7);
  models::DinoV3ViT m(c);
  m->eval();
  return m;
}

}  // namespace vidfuse::test
