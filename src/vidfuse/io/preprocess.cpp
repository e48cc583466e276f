#include "vidfuse/io/preprocess.h"

#include "vidfuse/core/error.h"

namespace vidfuse::io {

namespace F = torch::nn::functional;

torch::Tensor resize_bilinear_antialias(const torch::Tensor& images, int64_t h, int64_t w) {
  TORCH_CHECK(images.dim() == 4, "resize_bilinear_antialias wants [N,C,H,W], got ", images.sizes());
  if (images.size(2) == h && images.size(3) == w) return images;
  return F::interpolate(images, F::InterpolateFuncOptions()
                                    .size(std::vector<int64_t>{h, w})
                                    .mode(torch::kBilinear)
                                    .align_corners(false)
                                    .antialias(true));
}

torch::Tensor normalize_imagenet(const torch::Tensor& images) {
  auto opts = torch::TensorOptions().dtype(images.scalar_type()).device(images.device());
  const int64_t channel_dim = images.dim() - 3;
  std::vector<int64_t> shape(images.dim(), 1);
  shape[channel_dim] = 3;
  auto mean = torch::tensor({kImageNetMean[0], kImageNetMean[1], kImageNetMean[2]}).to(opts).view(shape);
  auto std = torch::tensor({kImageNetStd[0], kImageNetStd[1], kImageNetStd[2]}).to(opts).view(shape);
  return (images - mean) / std;
}

torch::Tensor dinov3_preprocess(const torch::Tensor& images_hwc_u8, int64_t h, int64_t w) {
  torch::Tensor x = images_hwc_u8.dim() == 3 ? images_hwc_u8.unsqueeze(0) : images_hwc_u8;
  TORCH_CHECK(x.dim() == 4 && x.size(3) == 3, "dinov3_preprocess wants [N,H,W,3] RGB, got ",
              images_hwc_u8.sizes());
  x = x.permute({0, 3, 1, 2}).to(torch::kFloat32).mul(1.0 / 255.0).contiguous();
  return normalize_imagenet(resize_bilinear_antialias(x, h, w));
}

void check_size_multiple(int64_t h, int64_t w, int64_t patch) {
  if (h <= 0 || w <= 0 || h % patch != 0 || w % patch != 0)
    throw Error("image size " + std::to_string(h) + "x" + std::to_string(w) +
                " is not a positive multiple of the patch size " + std::to_string(patch) +
                " in both dimensions (try " + std::to_string(std::max<int64_t>(1, h / patch) * patch) +
                "x" + std::to_string(std::max<int64_t>(1, w / patch) * patch) + ")");
}

}  // namespace vidfuse::io
