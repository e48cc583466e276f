// Reading and writing still images (PNG, JPEG, BMP, WebP, ... via OpenCV's imgcodecs).
#pragma once
#include <torch/torch.h>

#include <string>

namespace vidfuse::io {

// The image as a uint8 [H, W, 3] RGB tensor (grayscale and alpha images are converted to RGB).
torch::Tensor read_image_rgb(const std::string& path);

// Writes a uint8 [H, W, 3] RGB tensor; the format follows the extension. Atomic.
void write_image_rgb(const std::string& path, const torch::Tensor& hwc_rgb_u8);

}  // namespace vidfuse::io
