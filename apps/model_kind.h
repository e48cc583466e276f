// Which network a model path holds, decided from its tensor names alone.
#pragma once
#include <algorithm>
#include <string>

#include "vidfuse/weights/checkpoint.h"

namespace vidfuse::cli {

// DINOv3 checkpoints carry a CLS token (HF or original naming); I3D ones do not.
inline bool is_dinov3_checkpoint(const std::string& path) {
  auto keys = weights::checkpoint_keys(path);
  return std::any_of(keys.begin(), keys.end(), [](const std::string& k) {
    return k == "embeddings.cls_token" || k == "cls_token" || k == "module.cls_token";
  });
}

inline bool is_i3d_checkpoint(const std::string& path) { return !is_dinov3_checkpoint(path); }

}  // namespace vidfuse::cli
