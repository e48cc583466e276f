#include "vidfuse/io/image.h"

#include <filesystem>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"

namespace vidfuse::io {

torch::Tensor read_image_rgb(const std::string& path) {
  if (!std::filesystem::exists(path)) fail_file(path, "no such file");
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty()) fail_file(path, "not a readable image (unknown format or corrupt data)");
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).clone();
}

void write_image_rgb(const std::string& path, const torch::Tensor& hwc_rgb_u8) {
  TORCH_CHECK(hwc_rgb_u8.dim() == 3 && hwc_rgb_u8.size(2) == 3 &&
                  hwc_rgb_u8.scalar_type() == torch::kUInt8,
              "write_image_rgb wants a uint8 [H,W,3] tensor, got ", hwc_rgb_u8.sizes());
  torch::Tensor t = hwc_rgb_u8.contiguous().cpu();
  cv::Mat rgb(t.size(0), t.size(1), CV_8UC3, t.data_ptr<uint8_t>()), bgr;
  cv::cvtColor(rgb, bgr, cv::COLOR_RGB2BGR);
  std::vector<uchar> encoded;
  std::string ext = std::filesystem::path(path).extension().string();
  if (ext.empty()) ext = ".png";
  if (!cv::imencode(ext, bgr, encoded)) fail_file(path, "cannot encode an image as " + ext);
  write_file_atomically(path, [&](std::ostream& out) {
    out.write(reinterpret_cast<const char*>(encoded.data()), encoded.size());
  });
}

}  // namespace vidfuse::io
