// Optical flow for the I3D flow stream: sign, magnitude and DeepMind scaling on a translating
// texture, for TV-L1 and DIS.
#include <opencv2/imgproc.hpp>

#include "test_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/optical_flow.h"

using namespace vidfuse;

namespace {

// T frames of a smooth random texture whose content moves by (dx, dy) pixels per frame
// (positive dx = to the right, positive dy = downward), as uint8 RGB [T, H, W, 3].
torch::Tensor translating_texture(int64_t frames, int rows, int cols, int dx, int dy) {
  torch::manual_seed(3);
  const int margin = 4 + static_cast<int>(frames) * std::max(std::abs(dx), std::abs(dy));
  const int big_rows = rows + 2 * margin, big_cols = cols + 2 * margin;
  // Low-frequency noise upsampled: texture at every scale of TV-L1's pyramid, no aliasing.
  torch::Tensor noise = torch::rand({big_rows / 6, big_cols / 6, 3}) * 255;
  cv::Mat small(static_cast<int>(noise.size(0)), static_cast<int>(noise.size(1)), CV_32FC3,
                noise.data_ptr<float>());
  cv::Mat canvas, canvas8;
  cv::resize(small, canvas, cv::Size(big_cols, big_rows), 0, 0, cv::INTER_CUBIC);
  canvas.convertTo(canvas8, CV_8UC3);
  torch::Tensor out = torch::empty({frames, rows, cols, 3}, torch::kUInt8);
  for (int64_t t = 0; t < frames; ++t) {
    // Frame t shows the canvas window shifted by -t*(dx, dy): its content moves by +(dx, dy).
    const cv::Rect window(margin - static_cast<int>(t) * dx, margin - static_cast<int>(t) * dy,
                          cols, rows);
    cv::Mat dst(rows, cols, CV_8UC3, out[t].data_ptr<uint8_t>());
    canvas8(window).copyTo(dst);
  }
  return out;
}

// Median of channel c over the interior (the borders see content entering the frame).
double interior_median(const torch::Tensor& flow, int64_t c) {
  const int64_t h = flow.size(2), w = flow.size(3);
  return flow[c].slice(1, h / 4, h - h / 4).slice(2, w / 4, w - w / 4).median().item<double>();
}

void check_translation(io::FlowMethod method, double tol) {
  const int dx = 2, dy = -3;  // right and up
  const torch::Tensor frames = translating_texture(3, 96, 128, dx, dy);
  const torch::Tensor flow = io::compute_optical_flow(frames, {method, 20.0f});
  ASSERT_EQ(flow.sizes(), (std::vector<int64_t>{2, 2, 96, 128}));
  EXPECT_EQ(flow.scalar_type(), torch::kFloat32);
  EXPECT_LE(flow.abs().max().item<double>(), 1.0);
  for (int64_t t = 0; t < 2; ++t) {
    const torch::Tensor ft = flow.select(1, t).unsqueeze(1);
    EXPECT_NEAR(interior_median(ft, 0), dx / 20.0, tol) << "dx, flow " << t;
    EXPECT_NEAR(interior_median(ft, 1), dy / 20.0, tol) << "dy, flow " << t;
  }
}

}  // namespace

TEST(OpticalFlow, TVL1TranslationHasDeepMindSignAndScale) {
  check_translation(io::FlowMethod::kTVL1, 0.01);  // 0.2 px
}

TEST(OpticalFlow, DISTranslationHasDeepMindSignAndScale) {
  check_translation(io::FlowMethod::kDIS, 0.015);
}

TEST(OpticalFlow, StillFramesGiveZeroFlow) {
  const torch::Tensor frames = translating_texture(2, 64, 64, 0, 0);
  const torch::Tensor flow = io::compute_optical_flow(frames, {io::FlowMethod::kDIS, 20.0f});
  EXPECT_LE(flow.abs().max().item<double>(), 0.01);
}

TEST(OpticalFlow, ClipsToBoundAndScalesToUnitRange) {
  // Raw [T-1=1, H=1, W=3, 2]: (dx, dy) per pixel.
  const torch::Tensor raw = torch::tensor({30.f, -5.f, -25.f, 10.f, 10.f, 40.f}).view({1, 1, 3, 2});
  const torch::Tensor out = io::flow_to_i3d_input(raw, 20.0f);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{2, 1, 1, 3}));
  EXPECT_TRUE(torch::allclose(out[0].flatten(), torch::tensor({1.f, -1.f, 0.5f})));
  EXPECT_TRUE(torch::allclose(out[1].flatten(), torch::tensor({-0.25f, 0.5f, 1.f})));
}

TEST(OpticalFlow, BadInputIsAClearError) {
  EXPECT_THROW_WITH(io::compute_optical_flow(torch::zeros({3, 8, 8, 3})), "uint8", "[3, 8, 8, 3]");
  EXPECT_THROW_WITH(io::compute_optical_flow(torch::zeros({1, 8, 8, 3}, torch::kUInt8)),
                    "[1, 8, 8, 3]");
  EXPECT_THROW_WITH(io::compute_optical_flow(torch::zeros({2, 8, 8, 4}, torch::kUInt8)),
                    "[2, 8, 8, 4]");
  EXPECT_THROW_WITH(io::flow_method_from_name("farneback"), "farneback");
  EXPECT_EQ(io::flow_method_from_name("dis"), io::FlowMethod::kDIS);
}
