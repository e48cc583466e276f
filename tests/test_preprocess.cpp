#include <fstream>

#include "test_util.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/preprocess.h"
#include "vidfuse/weights/safetensors.h"

using namespace vidfuse;

namespace {
void check_fixture(const std::string& name) {
  auto f = weights::load_safetensors(test::fixture("preprocess/" + name + ".safetensors"));
  const auto& expected = f.at("pixel_values");
  auto out = io::dinov3_preprocess(f.at("image_hwc_rgb_u8"), expected.size(2), expected.size(3));
  ASSERT_EQ(out.sizes(), expected.sizes());
  EXPECT_LE((out - expected).abs().max().item<double>(), 1e-4) << name;
}
}  // namespace

TEST(Preprocess, LandscapeDownscaleMatchesHf) { check_fixture("landscape"); }
TEST(Preprocess, UpscaleMatchesHf) { check_fixture("upscale"); }

TEST(Preprocess, SizesMustBeMultiplesOfThePatch) {
  EXPECT_NO_THROW(io::check_size_multiple(224, 320, 16));
  EXPECT_THROW_WITH(io::check_size_multiple(225, 224, 16), "225x224", "multiple of the patch size 16");
  EXPECT_THROW_WITH(io::check_size_multiple(0, 224, 16), "multiple");
}

TEST(Image, PngRoundTripAndClearErrors) {
  test::ScratchDir dir;
  auto img = torch::randint(0, 255, {17, 23, 3}).to(torch::kUInt8);
  io::write_image_rgb(dir / "a.png", img);
  EXPECT_TRUE(torch::equal(io::read_image_rgb(dir / "a.png"), img));
  std::ofstream(dir / "garbage.jpg") << "definitely not a jpeg";
  EXPECT_THROW_WITH(io::read_image_rgb(dir / "garbage.jpg"), "garbage.jpg", "not a readable image");
  EXPECT_THROW_WITH(io::read_image_rgb(dir / "missing.png"), "missing.png", "no such file");
}
