#include "vidfuse/io/video_transforms.h"

#include <algorithm>
#include <cmath>

#include "vidfuse/core/error.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/preprocess.h"

namespace vidfuse::io {

namespace {

// Frames converted to float at a time by the presets: bounds peak memory, and keeps each
// temporary under glibc's 32 MiB mmap threshold (8 float 360p frames: 22 MB) so the heap reuses
// it instead of faulting in fresh pages for every chunk.
constexpr int64_t kChunk = 8;

void check_frames_u8(const torch::Tensor& f, const char* who) {
  if (f.dim() != 4 || f.size(3) != 3 || f.scalar_type() != torch::kUInt8)
    throw Error(std::string(who) + ": frames must be uint8 [T,H,W,3], got " +
                std::string(c10::toString(f.scalar_type())) + " " + c10::str(f.sizes()));
  if (f.size(0) == 0) throw Error(std::string(who) + ": no frames");
}

void check_spatial(const torch::Tensor& x, const char* who) {
  if (x.dim() < 2)
    throw Error(std::string(who) + ": expects [..., H, W], got " + c10::str(x.sizes()));
}

}  // namespace

torch::Tensor frames_to_float(const torch::Tensor& frames) {
  check_frames_u8(frames, "frames_to_float");
  return frames.permute({0, 3, 1, 2}).to(torch::kFloat32).mul_(1.0 / 255.0).contiguous();
}

torch::Tensor frames_to_uint8(const torch::Tensor& x) {
  if (x.dim() != 4 || x.size(1) != 3)
    throw Error("frames_to_uint8: expects [T,3,H,W], got " + c10::str(x.sizes()));
  return x.mul(255.0).round_().clamp_(0, 255).to(torch::kUInt8).permute({0, 2, 3, 1}).contiguous();
}

std::pair<int64_t, int64_t> short_side_size(int64_t h, int64_t w, int64_t short_side) {
  if (short_side <= 0) throw Error("resize: the short side must be positive");
  if (h <= w) return {short_side, static_cast<int64_t>(static_cast<double>(short_side) * w / h)};
  return {static_cast<int64_t>(static_cast<double>(short_side) * h / w), short_side};
}

torch::Tensor resize(const torch::Tensor& x, int64_t h, int64_t w) {
  check_spatial(x, "resize");
  if (h <= 0 || w <= 0) throw Error("resize: target size must be positive");
  if (!x.is_floating_point()) throw Error("resize: expects a float tensor (use frames_to_float)");
  const int64_t H = x.size(-2), W = x.size(-1);
  if (H == h && W == w) return x;
  std::vector<int64_t> lead(x.sizes().begin(), x.sizes().end() - 2);
  const int64_t n = x.numel() / (H * W);
  torch::Tensor y = resize_bilinear_antialias(x.reshape({n, 1, H, W}), h, w);
  lead.push_back(h);
  lead.push_back(w);
  return y.reshape(lead);
}

torch::Tensor resize_short_side(const torch::Tensor& x, int64_t short_side) {
  check_spatial(x, "resize_short_side");
  auto [h, w] = short_side_size(x.size(-2), x.size(-1), short_side);
  return resize(x, h, w);
}

torch::Tensor crop(const torch::Tensor& x, int64_t top, int64_t left, int64_t h, int64_t w) {
  check_spatial(x, "crop");
  const int64_t H = x.size(-2), W = x.size(-1);
  if (h <= 0 || w <= 0 || top < 0 || left < 0 || top + h > H || left + w > W)
    throw Error("crop: box (top " + std::to_string(top) + ", left " + std::to_string(left) + ", " +
                std::to_string(h) + "x" + std::to_string(w) + ") does not fit a " +
                std::to_string(H) + "x" + std::to_string(W) + " frame");
  return x.narrow(-2, top, h).narrow(-1, left, w);
}

torch::Tensor center_crop(const torch::Tensor& x, int64_t h, int64_t w) {
  check_spatial(x, "center_crop");
  return crop(x, (x.size(-2) - h) / 2, (x.size(-1) - w) / 2, h, w);
}

torch::Tensor three_crop(const torch::Tensor& x, int64_t size) {
  check_spatial(x, "three_crop");
  const int64_t H = x.size(-2), W = x.size(-1);
  std::vector<torch::Tensor> crops;
  if (W >= H) {
    const int64_t top = (H - size) / 2, step = (W - size) / 2;
    for (int64_t left : {int64_t{0}, 2 * step, step})
      crops.push_back(crop(x, top, left, size, size));
  } else {
    const int64_t left = (W - size) / 2, step = (H - size) / 2;
    for (int64_t top : {int64_t{0}, 2 * step, step})
      crops.push_back(crop(x, top, left, size, size));
  }
  return torch::stack(crops);
}

torch::Tensor ten_crop(const torch::Tensor& x, int64_t size) {
  check_spatial(x, "ten_crop");
  const int64_t ws = (x.size(-1) - size) / 4, hs = (x.size(-2) - size) / 4;
  const std::pair<int64_t, int64_t> offsets[] = {
      {0, 0}, {0, 4 * ws}, {4 * hs, 0}, {4 * hs, 4 * ws}, {2 * hs, 2 * ws}};
  std::vector<torch::Tensor> crops;
  for (const auto& [top, left] : offsets) crops.push_back(crop(x, top, left, size, size));
  for (int i = 0; i < 5; ++i) crops.push_back(hflip(crops[i]));
  return torch::stack(crops);
}

torch::Tensor hflip(const torch::Tensor& x) {
  check_spatial(x, "hflip");
  return x.flip({-1});
}

CropBox random_resized_crop_box(int64_t h, int64_t w, SampleRng& rng,
                                std::pair<double, double> scale, std::pair<double, double> ratio) {
  if (h <= 0 || w <= 0) throw Error("random_resized_crop: empty frame");
  if (!(scale.first > 0 && scale.first <= scale.second && ratio.first > 0 &&
        ratio.first <= ratio.second))
    throw Error("random_resized_crop: scale and ratio must be increasing positive ranges");
  const double area = static_cast<double>(h) * static_cast<double>(w);
  const double log_lo = std::log(ratio.first), log_hi = std::log(ratio.second);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * rng.uniform_real(scale.first, scale.second);
    const double aspect = std::exp(rng.uniform_real(log_lo, log_hi));
    const auto cw = static_cast<int64_t>(std::llround(std::sqrt(target * aspect)));
    const auto ch = static_cast<int64_t>(std::llround(std::sqrt(target / aspect)));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h)
      return {rng.uniform_int(h - ch + 1), rng.uniform_int(w - cw + 1), ch, cw};
  }
  // Fallback: the whole frame, trimmed to the nearest allowed aspect ratio.
  const double in_ratio = static_cast<double>(w) / static_cast<double>(h);
  int64_t cw = w, ch = h;
  if (in_ratio < ratio.first) {
    ch = static_cast<int64_t>(std::llround(static_cast<double>(w) / ratio.first));
  } else if (in_ratio > ratio.second) {
    cw = static_cast<int64_t>(std::llround(static_cast<double>(h) * ratio.second));
  }
  return {(h - ch) / 2, (w - cw) / 2, ch, cw};
}

torch::Tensor random_resized_crop(const torch::Tensor& x, int64_t out_h, int64_t out_w,
                                  SampleRng& rng, std::pair<double, double> scale,
                                  std::pair<double, double> ratio) {
  check_spatial(x, "random_resized_crop");
  const CropBox b = random_resized_crop_box(x.size(-2), x.size(-1), rng, scale, ratio);
  return resize(crop(x, b.top, b.left, b.height, b.width).contiguous(), out_h, out_w);
}

torch::Tensor normalize(const torch::Tensor& x, const std::array<float, 3>& mean,
                        const std::array<float, 3>& std, int64_t channel_dim) {
  const int64_t d = channel_dim < 0 ? channel_dim + x.dim() : channel_dim;
  if (d < 0 || d >= x.dim() || x.size(d) != 3)
    throw Error("normalize: dimension " + std::to_string(channel_dim) + " of " +
                c10::str(x.sizes()) + " is not a 3-channel axis");
  std::vector<int64_t> shape(x.dim(), 1);
  shape[d] = 3;
  auto opts = torch::TensorOptions().dtype(x.scalar_type()).device(x.device());
  auto m = torch::tensor({mean[0], mean[1], mean[2]}).to(opts).view(shape);
  auto s = torch::tensor({std[0], std[1], std[2]}).to(opts).view(shape);
  return (x - m) / s;
}

torch::Tensor dinov3_transform(const torch::Tensor& frames, int64_t height, int64_t width) {
  check_frames_u8(frames, "dinov3_transform");
  const int64_t T = frames.size(0);
  torch::Tensor out = empty_frame_buffer({T, 3, height, width}, torch::kFloat32);
  for (int64_t t = 0; t < T; t += kChunk) {
    const int64_t n = std::min(kChunk, T - t);
    out.narrow(0, t, n).copy_(dinov3_preprocess(frames.narrow(0, t, n), height, width));
  }
  return out;
}

torch::Tensor i3d_transform(const torch::Tensor& frames, int64_t short_side, int64_t crop_size) {
  check_frames_u8(frames, "i3d_transform");
  const int64_t T = frames.size(0);
  auto [rh, rw] = short_side_size(frames.size(1), frames.size(2), short_side);
  if (rh < crop_size || rw < crop_size)
    throw Error("i3d_transform: crop " + std::to_string(crop_size) +
                " is larger than the resized frame");
  torch::Tensor out = empty_frame_buffer({3, T, crop_size, crop_size}, torch::kFloat32);
  for (int64_t t = 0; t < T; t += kChunk) {
    const int64_t n = std::min(kChunk, T - t);
    torch::Tensor x = frames_to_float(frames.narrow(0, t, n));
    x = center_crop(resize(x, rh, rw), crop_size, crop_size);
    out.narrow(1, t, n).copy_(x.mul(2.0).sub_(1.0).transpose(0, 1));
  }
  return out;
}

TransformPreset parse_transform_preset(const std::string& name) {
  if (name == "none") return TransformPreset::None;
  if (name == "dinov3") return TransformPreset::DINOv3;
  if (name == "i3d") return TransformPreset::I3D;
  throw Error("unknown transform preset '" + name + "' (expected none, dinov3 or i3d)");
}

std::string to_string(TransformPreset preset) {
  switch (preset) {
    case TransformPreset::None:
      return "none";
    case TransformPreset::DINOv3:
      return "dinov3";
    case TransformPreset::I3D:
      return "i3d";
  }
  return "?";
}

torch::Tensor apply_preset(TransformPreset preset, const torch::Tensor& frames) {
  switch (preset) {
    case TransformPreset::None:
      return frames_to_float(frames);
    case TransformPreset::DINOv3:
      return dinov3_transform(frames);
    case TransformPreset::I3D:
      return i3d_transform(frames);
  }
  return frames;
}

torch::Tensor preset_to_viewable(TransformPreset preset, const torch::Tensor& x) {
  switch (preset) {
    case TransformPreset::None:
      return frames_to_uint8(x);
    case TransformPreset::DINOv3: {
      auto mean =
          torch::tensor({kImageNetMean[0], kImageNetMean[1], kImageNetMean[2]}).view({1, 3, 1, 1});
      auto std =
          torch::tensor({kImageNetStd[0], kImageNetStd[1], kImageNetStd[2]}).view({1, 3, 1, 1});
      return frames_to_uint8(x * std + mean);
    }
    case TransformPreset::I3D:
      return frames_to_uint8(x.add(1.0).mul(0.5).transpose(0, 1));
  }
  return x;
}

}  // namespace vidfuse::io
