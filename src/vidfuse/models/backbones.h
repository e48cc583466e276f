// The two frozen backbones, named the way commands take them: a checkpoint path (HF directory,
// .safetensors, .pt), or "builtin" for small random-weight networks of the right topology that
// let the whole pipeline run on a machine with no downloaded weights (the demo, quick tests).
// Built-in weights are drawn from a fixed seed, so every command that names "builtin" gets the
// same networks and features extracted by one command fit a model used by another.
#pragma once
#include <string>

#include "vidfuse/models/dinov3.h"
#include "vidfuse/models/i3d.h"

namespace vidfuse::models {

inline constexpr const char* kBuiltinBackbone = "builtin";

// A DINOv3 ViT with hidden size 192, 4 layers, 3 heads, patch 16, 4 registers (~1.8M params).
DinoV3Config builtin_dinov3_config();
// I3D at width 0.25 (Mixed_5c has 256 channels; ~0.8M params), RGB or flow input.
I3DConfig builtin_i3d_config(int64_t in_channels = 3);

// "builtin" or a checkpoint path. Built-ins are random (seeded) and in eval mode.
DinoV3ViT dinov3_from_spec(const std::string& spec, torch::ScalarType dtype = torch::kFloat32);
InceptionI3d i3d_from_spec(const std::string& spec, int64_t in_channels = 3);

// One line for reports: what the backbone is and how its weights were obtained.
std::string describe_backbone(const std::string& spec, const std::string& stream);

}  // namespace vidfuse::models
