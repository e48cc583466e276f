// Loading a state dict (name -> tensor) into a torch::nn::Module, by the names that
// named_parameters() and named_buffers() yield. Strict by default: every missing key, unexpected key
// and shape mismatch is reported together, by name, with both shapes.
#pragma once
#include <torch/torch.h>

#include <string>

#include "vidfuse/weights/safetensors.h"

namespace vidfuse::weights {

struct LoadOptions {
  bool strict = true;          // missing/unexpected keys are errors (shape mismatches always are)
  std::string source;          // file or directory named in error messages
};

// Copies every tensor into the module's parameter/buffer of the same name, converting dtype to the
// destination's. Throws vidfuse::Error listing every problem.
void load_state_dict(torch::nn::Module& module, const TensorMap& state, const LoadOptions& options);

// All parameters and buffers of a module, by name (a state dict of it).
TensorMap state_dict_of(const torch::nn::Module& module);

// Removes a leading prefix (e.g. "module." from DataParallel) from every key that has it.
TensorMap strip_prefix(const TensorMap& state, const std::string& prefix);

}  // namespace vidfuse::weights
