// Parsing the `--dtype` option shared by the model commands.
#pragma once
#include <torch/torch.h>

#include <string>

#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"

namespace vidfuse::cli {

// bf16 on a CPU without native bf16 is allowed but warned about (see core/runtime.h).
inline torch::ScalarType parse_compute_dtype(const std::string& name,
                                             const std::string& device = "cpu") {
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  if (name == "bf16" || name == "bfloat16") {
    warn_if_bf16_is_emulated(true, device);
    return torch::kBFloat16;
  }
  if (name == "fp16" || name == "float16")
    throw Error("--dtype fp16 is refused: DINOv3 activations overflow fp16; use bf16 or fp32");
  throw Error("unknown --dtype '" + name + "' (fp32 or bf16)");
}

}  // namespace vidfuse::cli
