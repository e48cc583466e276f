// Parsing the `--dtype` option shared by the model commands.
#pragma once
#include <torch/torch.h>

#include <string>

#include "vidfuse/core/error.h"

namespace vidfuse::cli {

inline torch::ScalarType parse_compute_dtype(const std::string& name) {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp16" || name == "float16")
    throw Error("--dtype fp16 is refused: DINOv3 activations overflow fp16; use bf16 or fp32");
  throw Error("unknown --dtype '" + name + "' (fp32 or bf16)");
}

}  // namespace vidfuse::cli
