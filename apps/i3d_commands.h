// The I3D side of `vidfuse forward` and `vidfuse info` (the commands themselves route by model).
#pragma once
#include <string>

#include "vidfuse/weights/safetensors.h"

namespace vidfuse::cli {

// True if the state dict is an I3D checkpoint under any accepted naming (see i3d_names.h).
bool looks_like_i3d(const weights::TensorMap& state);

// Reads `input` [B, C, T, H, W] (tensor "input") from a safetensors file, runs the model from
// `model_path` with BatchNorm folded in `dtype` ("fp32" or "bf16") and writes `mixed_5c`,
// `features` and `logits` (5-D) as F32 to `output`, atomically, computing on `device` (a
// resolved torch device name). Returns the exit code.
int forward_i3d(const std::string& model_path, const std::string& input, const std::string& output,
                const std::string& dtype, const std::string& device = "cpu");

// Prints the architecture, input channels, classes, parameter count, stored dtypes and a summary
// of the keys of the I3D checkpoint at `path`. Returns the exit code.
int info_i3d(const std::string& path);

}  // namespace vidfuse::cli
