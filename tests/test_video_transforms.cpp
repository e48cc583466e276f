// VideoTransforms*: crop geometry checked on tensors whose values name their position, presets
// checked against the HF preprocessing fixture and against hand-computed values.
#include "test_video_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/preprocess.h"
#include "vidfuse/io/video_transforms.h"
#include "vidfuse/weights/safetensors.h"

using namespace vidfuse;
using namespace vidfuse::test;
using namespace vidfuse::io;

namespace {
// [T, C, H, W] float where value = 1000·y + x: a crop's top-left value gives its offset.
torch::Tensor position_tensor(int64_t t, int64_t h, int64_t w) {
  auto y = torch::arange(h, torch::kFloat32).view({h, 1}) * 1000;
  auto x = torch::arange(w, torch::kFloat32).view({1, w});
  return (y + x).expand({t, 3, h, w}).contiguous();
}
float value_at(const torch::Tensor& x, int64_t y, int64_t xx) {
  return x.select(-2, y).select(-1, xx).flatten()[0].item<float>();
}
}  // namespace

TEST(VideoTransforms, ShortSideFollowsTorchvision) {
  EXPECT_EQ(short_side_size(240, 427, 256), (std::pair<int64_t, int64_t>{256, 455}));
  EXPECT_EQ(short_side_size(360, 640, 256), (std::pair<int64_t, int64_t>{256, 455}));
  EXPECT_EQ(short_side_size(640, 360, 224), (std::pair<int64_t, int64_t>{398, 224}));
  EXPECT_EQ(short_side_size(100, 100, 50), (std::pair<int64_t, int64_t>{50, 50}));
  auto x = frames_to_float(code_frames(2, 48, 64));
  EXPECT_EQ(resize_short_side(x, 24).sizes(), (std::vector<int64_t>{2, 3, 24, 32}));
  EXPECT_EQ(resize(x, 10, 20).sizes(), (std::vector<int64_t>{2, 3, 10, 20}));
  // [3,T,H,W] (motion layout) resizes the same.
  EXPECT_TRUE(
      torch::allclose(resize(x.transpose(0, 1), 24, 32).transpose(0, 1), resize(x, 24, 32)));
}

TEST(VideoTransforms, CropsTakeTheDocumentedOffsets) {
  auto x = position_tensor(2, 10, 17);
  auto c = center_crop(x, 4, 6);
  EXPECT_EQ(c.sizes(), (std::vector<int64_t>{2, 3, 4, 6}));
  EXPECT_EQ(value_at(c, 0, 0), 3 * 1000 + 5);  // floor((10-4)/2), floor((17-6)/2)
  EXPECT_THROW_WITH(center_crop(x, 11, 4), "does not fit");

  // ThreeCrop along the long (W) side: start, end (2·step), centre.
  auto three = three_crop(position_tensor(1, 8, 20), 8);
  ASSERT_EQ(three.sizes(), (std::vector<int64_t>{3, 1, 3, 8, 8}));
  EXPECT_EQ(value_at(three[0], 0, 0), 0);
  EXPECT_EQ(value_at(three[1], 0, 0), 12);
  EXPECT_EQ(value_at(three[2], 0, 0), 6);
  auto tall = three_crop(position_tensor(1, 21, 8), 8);  // long side H: step 6
  EXPECT_EQ(value_at(tall[1], 0, 0), 12000);

  // TenCrop: corners at 4·step, centre at 2·step, then the flipped five.
  auto ten = ten_crop(position_tensor(1, 14, 19), 6);  // steps: h (14-6)/4 = 2, w (19-6)/4 = 3
  ASSERT_EQ(ten.size(0), 10);
  const float tl[] = {0, 12, 8000, 8012, 4006};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(value_at(ten[i], 0, 0), tl[i]) << i;
    EXPECT_TRUE(torch::equal(ten[5 + i], ten[i].flip({-1}))) << i;
  }
  EXPECT_TRUE(torch::equal(hflip(x).select(-1, 0), x.select(-1, 16)));
}

TEST(VideoTransforms, RandomResizedCropIsSeededAndInBounds) {
  for (uint64_t seed = 0; seed < 100; ++seed) {
    SampleRng a(seed), b(seed);
    const CropBox box = random_resized_crop_box(48, 64, a);
    const CropBox same = random_resized_crop_box(48, 64, b);
    EXPECT_EQ(box.top, same.top);
    EXPECT_EQ(box.left, same.left);
    EXPECT_EQ(box.height, same.height);
    EXPECT_GE(box.top, 0);
    EXPECT_GE(box.left, 0);
    EXPECT_LE(box.top + box.height, 48);
    EXPECT_LE(box.left + box.width, 64);
    const double area = static_cast<double>(box.height * box.width) / (48.0 * 64.0);
    EXPECT_GE(area, 0.07);
    const double ratio = static_cast<double>(box.width) / box.height;
    EXPECT_GE(ratio, 0.70);
    EXPECT_LE(ratio, 1.40);
  }
  // An impossible ratio falls back to a centred crop of the allowed shape.
  SampleRng r(0);
  const CropBox fallback = random_resized_crop_box(10, 100, r, {0.9, 1.0}, {1.0, 1.0});
  EXPECT_EQ(fallback.width, 10);
  EXPECT_EQ(fallback.height, 10);
  EXPECT_EQ(fallback.left, 45);
  // One crop for the whole clip: every frame's crop comes from the same box.
  auto clip = position_tensor(4, 48, 64);
  SampleRng c(3);
  auto out = random_resized_crop(clip, 16, 16, c);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{4, 3, 16, 16}));
  EXPECT_TRUE(torch::equal(out[0], out[3]));
}

TEST(VideoTransforms, DinoPresetMatchesTheHfFixture) {
  for (const char* name : {"landscape", "upscale"}) {
    auto t = weights::load_safetensors(fixture(std::string("preprocess/") + name + ".safetensors"));
    const torch::Tensor image = t.at("image_hwc_rgb_u8");
    const torch::Tensor expected = t.at("pixel_values");
    // As a clip of three identical frames: every frame must match the single-image reference.
    const torch::Tensor clip = image.unsqueeze(0).expand({3, -1, -1, -1}).contiguous();
    const torch::Tensor out = dinov3_transform(clip, expected.size(2), expected.size(3));
    ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 3, expected.size(2), expected.size(3)}));
    for (int i = 0; i < 3; ++i) EXPECT_LE(rel_error(out[i].unsqueeze(0), expected), 1e-4) << name;
  }
}

TEST(VideoTransforms, I3dPresetShortSideCropAndScale) {
  // 20 frames of 288×320: short side 288 → 256 gives 256×284; centre crop 224 at (16, 30).
  torch::Tensor frames = torch::randint(0, 256, {20, 288, 320, 3}, torch::kUInt8);
  torch::Tensor out = i3d_transform(frames);
  ASSERT_EQ(out.sizes(), (std::vector<int64_t>{3, 20, 224, 224}));
  torch::Tensor ref = resize(frames_to_float(frames), 256, 284);
  ref = ref.narrow(2, 16, 224).narrow(3, 30, 224).mul(2).sub(1).transpose(0, 1);
  EXPECT_LE(rel_error(out, ref), 1e-6);
  EXPECT_LE(out.max().item<float>(), 1.0f);
  EXPECT_GE(out.min().item<float>(), -1.0f);
  // Constant frames stay constant: v ↦ 2v/255 − 1.
  torch::Tensor flat = torch::full({9, 256, 256, 3}, 51, torch::kUInt8);
  EXPECT_TRUE(torch::allclose(i3d_transform(flat),
                              torch::full({3, 9, 224, 224}, 2 * 51 / 255.0 - 1), 0, 1e-6));
  EXPECT_THROW_WITH(i3d_transform(torch::zeros({2, 100, 100}, torch::kUInt8)), "[T,H,W,3]");
}

TEST(VideoTransforms, PresetsRoundTripToViewableFrames) {
  torch::Tensor frames = code_frames(3, 224, 224);
  for (auto preset : {TransformPreset::None, TransformPreset::DINOv3}) {
    torch::Tensor back = preset_to_viewable(preset, apply_preset(preset, frames));
    EXPECT_LE((back.to(torch::kInt) - frames.to(torch::kInt)).abs().max().item<int>(), 1);
  }
  torch::Tensor i3d = preset_to_viewable(
      TransformPreset::I3D, apply_preset(TransformPreset::I3D, code_frames(9, 256, 256)));
  EXPECT_EQ(i3d.sizes(), (std::vector<int64_t>{9, 224, 224, 3}));
  EXPECT_EQ(parse_transform_preset("i3d"), TransformPreset::I3D);
  EXPECT_THROW_WITH(parse_transform_preset("clip"), "clip", "dinov3");
}
