// Reading a checkpoint of any accepted format into a TensorMap, chosen by what the path is:
//  - a directory: Hugging Face layout, `model.safetensors` or sharded via `model.safetensors.index.json`
//  - a `.safetensors` file
//  - a PyTorch `.pt`/`.pth`: zip format (torch.save >= 1.6) or legacy pickle (PyTorch <= 1.5, incl. 0.3)
// Tensors keep their stored dtype; callers convert.
#pragma once
#include <string>
#include <vector>

#include "vidfuse/weights/safetensors.h"

namespace vidfuse::weights {

TensorMap read_checkpoint(const std::string& path);

// The tensor names of a checkpoint; cheap for safetensors files and HF directories (header only).
std::vector<std::string> checkpoint_keys(const std::string& path);

// The tensors of a HF model directory (single or sharded safetensors).
TensorMap read_hf_directory(const std::string& dir);

}  // namespace vidfuse::weights
