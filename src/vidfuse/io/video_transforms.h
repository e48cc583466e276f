// Clip transforms: from decoded uint8 frames [T,H,W,3] to what each backbone eats. Geometric ops
// act on the last two dims, so they serve [T,3,H,W] (semantic stream) and [3,T,H,W] (motion stream)
// alike, and one crop/flip decision applies to every frame of a clip (temporal consistency).
// Crop offsets follow mmaction2/TSN (CenterCrop, ThreeCrop, TenCrop); resizing is antialiased
// bilinear (PIL / torchvision semantics), the way the reference pipelines resize.
#pragma once
#include <torch/types.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>

#include "vidfuse/io/sampling.h"

namespace vidfuse::io {

// uint8 [T,H,W,3] → float32 [T,3,H,W] in [0, 1].
torch::Tensor frames_to_float(const torch::Tensor& frames_thw3_u8);
// float [T,3,H,W] in [0, 1] → uint8 [T,H,W,3] (rounded, clamped): for writing frames out.
torch::Tensor frames_to_uint8(const torch::Tensor& frames_t3hw);

// Output size when the short side becomes `short_side` (torchvision Resize(int): the long side is
// scaled and truncated, int(short_side · long / short)).
std::pair<int64_t, int64_t> short_side_size(int64_t h, int64_t w, int64_t short_side);

// Float [..., H, W]; antialiased bilinear (plain bilinear when enlarging).
torch::Tensor resize(const torch::Tensor& x, int64_t h, int64_t w);
torch::Tensor resize_short_side(const torch::Tensor& x, int64_t short_side);

torch::Tensor crop(const torch::Tensor& x, int64_t top, int64_t left, int64_t h, int64_t w);
// Offsets floor((H - h) / 2), floor((W - w) / 2). Throws if the crop is larger than the frame.
torch::Tensor center_crop(const torch::Tensor& x, int64_t h, int64_t w);
// mmaction2 ThreeCrop: three size×size crops along the long side (start, end, centre — in that
// order) → [3, ...].
torch::Tensor three_crop(const torch::Tensor& x, int64_t size);
// TSN/mmaction2 TenCrop: top-left, top-right, bottom-left, bottom-right, centre (steps of
// (W - size) / 4), then the same five of the horizontally flipped clip → [10, ...].
torch::Tensor ten_crop(const torch::Tensor& x, int64_t size);
torch::Tensor hflip(const torch::Tensor& x);

struct CropBox {
  int64_t top = 0, left = 0, height = 0, width = 0;
};
// torchvision RandomResizedCrop.get_params: area fraction in `scale`, aspect ratio log-uniform in
// `ratio`, ten tries, then a centre crop clamped to the ratio range.
CropBox random_resized_crop_box(int64_t h, int64_t w, SampleRng& rng,
                                std::pair<double, double> scale = {0.08, 1.0},
                                std::pair<double, double> ratio = {3.0 / 4.0, 4.0 / 3.0});
torch::Tensor random_resized_crop(const torch::Tensor& x, int64_t out_h, int64_t out_w,
                                  SampleRng& rng, std::pair<double, double> scale = {0.08, 1.0},
                                  std::pair<double, double> ratio = {3.0 / 4.0, 4.0 / 3.0});

// (x - mean) / std along `channel_dim` (which must have size 3).
torch::Tensor normalize(const torch::Tensor& x, const std::array<float, 3>& mean,
                        const std::array<float, 3>& std, int64_t channel_dim);

// Presets. Both work through the clip in chunks of frames, so a 10 s clip at full resolution never
// exists as float all at once.
// DINOv3 (HF image processor): ×1/255 → antialiased bilinear squash-resize to height×width (aspect
// not kept, no crop) → ImageNet mean/std → float [T,3,height,width].
torch::Tensor dinov3_transform(const torch::Tensor& frames_thw3_u8, int64_t height = 224,
                               int64_t width = 224);
// I3D (DeepMind / video_features): short side to 256 → centre crop 224 → scale to [-1, 1]
// → float [3,T,crop,crop].
torch::Tensor i3d_transform(const torch::Tensor& frames_thw3_u8, int64_t short_side = 256,
                            int64_t crop_size = 224);

enum class TransformPreset { None, DINOv3, I3D };
TransformPreset parse_transform_preset(const std::string& name);  // none|dinov3|i3d
std::string to_string(TransformPreset preset);
// None: float [T,3,H,W] in [0,1]; DINOv3: [T,3,224,224]; I3D: [3,T,224,224].
torch::Tensor apply_preset(TransformPreset preset, const torch::Tensor& frames_thw3_u8);
// Undoes a preset's value scaling (not its geometry) so frames can be looked at: → uint8 [T,H,W,3].
torch::Tensor preset_to_viewable(TransformPreset preset, const torch::Tensor& transformed);

}  // namespace vidfuse::io
