// The Hugging Face DINOv3 image preprocessing, exactly: uint8 RGB -> x/255 -> bilinear resize with
// antialias (align_corners=False) -> ImageNet mean/std normalisation.
#pragma once
#include <torch/torch.h>

#include <array>

namespace vidfuse::io {

inline constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
inline constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

// Antialiased bilinear resize of float images [N, C, H, W] (PIL/torchvision semantics when shrinking,
// plain bilinear when enlarging).
torch::Tensor resize_bilinear_antialias(const torch::Tensor& images_nchw_float, int64_t h, int64_t w);

// (x - mean) / std per channel of [N, 3, H, W] (or [3, H, W]) float images.
torch::Tensor normalize_imagenet(const torch::Tensor& images);

// uint8 [H, W, 3] or [N, H, W, 3] RGB -> pixel_values float32 [N, 3, h, w] ready for DINOv3.
torch::Tensor dinov3_preprocess(const torch::Tensor& images_hwc_u8, int64_t h = 224, int64_t w = 224);

// Throws vidfuse::Error unless h and w are positive multiples of `patch` (16 for DINOv3).
void check_size_multiple(int64_t h, int64_t w, int64_t patch);

}  // namespace vidfuse::io
