#include "vidfuse/io/optical_flow.h"

#include <opencv2/imgproc.hpp>
#include <opencv2/optflow.hpp>
#include <opencv2/video/tracking.hpp>
#include <sstream>

#include "vidfuse/core/error.h"

namespace vidfuse::io {
namespace {

cv::Ptr<cv::DenseOpticalFlow> make_algorithm(FlowMethod method) {
  switch (method) {
    case FlowMethod::kTVL1:
      return cv::optflow::DualTVL1OpticalFlow::create();
    case FlowMethod::kDIS:
      return cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
  }
  throw Error("optical flow: unknown method");
}

}  // namespace

FlowMethod flow_method_from_name(const std::string& name) {
  if (name == "tvl1") return FlowMethod::kTVL1;
  if (name == "dis") return FlowMethod::kDIS;
  throw Error("optical flow: unknown method '" + name + "' (expected tvl1 or dis)");
}

std::string flow_method_name(FlowMethod method) {
  return method == FlowMethod::kDIS ? "dis" : "tvl1";
}

torch::Tensor flow_to_i3d_input(const torch::Tensor& raw_flow, float bound) {
  if (raw_flow.dim() != 4 || raw_flow.size(3) != 2 || !(bound > 0)) {
    std::ostringstream shape;
    shape << raw_flow.sizes();
    throw Error("optical flow: expected raw flow [T-1, H, W, 2] and a positive bound, got " +
                shape.str() + " and " + std::to_string(bound));
  }
  return raw_flow.to(torch::kFloat32)
      .clamp(-bound, bound)
      .div(bound)
      .permute({3, 0, 1, 2})
      .contiguous();
}

torch::Tensor compute_optical_flow(const torch::Tensor& frames, const FlowOptions& options) {
  if (frames.scalar_type() != torch::kUInt8 || frames.dim() != 4 || frames.size(0) < 2 ||
      frames.size(3) != 3) {
    std::ostringstream shape;
    shape << frames.sizes();
    throw Error("optical flow: expected uint8 RGB frames [T >= 2, H, W, 3], got " +
                std::string(c10::toString(frames.scalar_type())) + " " + shape.str());
  }
  const torch::Tensor rgb = frames.cpu().contiguous();
  const int64_t t = rgb.size(0);
  const int rows = static_cast<int>(rgb.size(1)), cols = static_cast<int>(rgb.size(2));

  std::vector<cv::Mat> gray(t);
  for (int64_t i = 0; i < t; ++i) {
    const cv::Mat frame(rows, cols, CV_8UC3, rgb[i].data_ptr<uint8_t>());
    cv::cvtColor(frame, gray[i], cv::COLOR_RGB2GRAY);
  }
  // Written in place through cv::Mat headers over the tensor's rows.
  torch::Tensor raw = torch::empty({t - 1, rows, cols, 2}, torch::kFloat32);
  cv::Ptr<cv::DenseOpticalFlow> algorithm = make_algorithm(options.method);
  for (int64_t i = 0; i + 1 < t; ++i) {
    cv::Mat flow(rows, cols, CV_32FC2, raw[i].data_ptr<float>());
    cv::Mat result;
    algorithm->calc(gray[i], gray[i + 1], result);
    result.copyTo(flow);
  }
  return flow_to_i3d_input(raw, options.bound);
}

}  // namespace vidfuse::io
