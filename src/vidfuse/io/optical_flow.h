// Dense optical flow for the I3D flow stream, with DeepMind's kinetics-i3d conventions: flow of
// grayscale frames, clipped to [-bound, bound] pixels (bound 20), divided by bound to [-1, 1],
// channels (dx, dy). T frames give T-1 flow fields: flow t maps frame t to frame t+1.
#pragma once
#include <torch/torch.h>

namespace vidfuse::io {

enum class FlowMethod {
  kTVL1,  // cv::optflow::DualTVL1OpticalFlow (OpenCV defaults): the I3D paper's algorithm
  kDIS,   // cv::DISOpticalFlow (PRESET_MEDIUM): much faster, somewhat less accurate
};

struct FlowOptions {
  FlowMethod method = FlowMethod::kTVL1;
  float bound = 20.0f;  // pixels; flow is clipped to [-bound, bound] then divided by bound
};

// frames: uint8 [T, H, W, 3] RGB, T >= 2. Returns float32 [2, T-1, H, W] in [-1, 1], channel 0 = dx
// (positive = motion to the right), channel 1 = dy (positive = downward). Throws vidfuse::Error on
// a wrong dtype or shape.
torch::Tensor compute_optical_flow(const torch::Tensor& frames, const FlowOptions& options = {});

// Raw flow in pixels, float32 [T-1, H, W, 2] (dx, dy) -> I3D input layout [2, T-1, H, W], clipped
// and scaled by `bound`.
torch::Tensor flow_to_i3d_input(const torch::Tensor& raw_flow, float bound = 20.0f);

// "tvl1" / "dis" -> FlowMethod; throws vidfuse::Error on anything else.
FlowMethod flow_method_from_name(const std::string& name);
std::string flow_method_name(FlowMethod method);  // the inverse

}  // namespace vidfuse::io
