// PyTorch `.pt` checkpoints read in C++ with no Python: the zip format (torch.save >= 1.6:
// archive/data.pkl + archive/data/<key>) and the legacy format (PyTorch <= 1.5: magic number,
// protocol, sys-info pickles, the object pickle, the storage keys, then raw storages), including
// PyTorch 0.3's torch._utils._rebuild_tensor and the later _rebuild_tensor_v2 / _rebuild_parameter.
// Views keep their storage offset and strides (tensors sharing a storage share it here too), and
// storages saved from any device (e.g. "cuda:1") are loaded to the CPU in their stored dtype.
// Only what a state dict needs is unpickled: any other global (a pickled nn.Module, a TorchScript
// archive, numpy arrays, ...) is refused with an error naming it.
#pragma once
#include <string>
#include <string_view>

#include "vidfuse/weights/safetensors.h"

namespace vidfuse::weights {

// True if the file starts like a zip archive (torch.save >= 1.6).
bool is_zip_checkpoint(const std::string& path);

// Reads a .pt/.pth state dict, either format. The state dict is the top-level dict or the first
// dict of tensors under "state_dict", "model_state_dict", "model", "module", "net" or "network";
// its non-tensor values are skipped, and a "module." prefix common to every key (DataParallel)
// is removed. Only the storages it references are read.
// Throws vidfuse::Error naming the file and the problem on anything malformed.
TensorMap read_torch_checkpoint(const std::string& path);

// The same for a checkpoint already in memory; `path` names it in error messages. The returned
// tensors own their data.
TensorMap read_torch_checkpoint_from_memory(const std::string& path, std::string_view bytes);

}  // namespace vidfuse::weights
