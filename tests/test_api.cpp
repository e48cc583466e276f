// The public C++ API (vidfuse/vidfuse.h): device resolution, the extractors against the models
// they wrap, and argument errors as InvalidArgument. The Python package's tests (python/tests)
// check the same API against the command, bit for bit.
#include <gtest/gtest.h>
#include <vidfuse/vidfuse.h>

#include "test_util.h"
#include "vidfuse/io/preprocess.h"
#include "vidfuse/models/dinov3.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse {
namespace {

using test::fixture;

TEST(ApiDevice, AutoTakesThisRanksGpuOrTheCpu) {
  EXPECT_EQ(resolve_device("auto", 0, 0).device, "cpu");
  EXPECT_NE(resolve_device("auto", 0, 0).reason.find("no CUDA device"), std::string::npos);
  EXPECT_EQ(resolve_device("auto", 0, 2).device, "cuda:0");
  EXPECT_EQ(resolve_device("auto", 3, 2).device, "cuda:1");  // wraps where ranks outnumber GPUs
  EXPECT_EQ(resolve_device("cuda", 1, 4).device, "cuda:1");
  EXPECT_EQ(resolve_device("cuda:3", 0, 4).device, "cuda:3");
  EXPECT_EQ(resolve_device("cpu", 0, 4).device, "cpu");
}

TEST(ApiDevice, AGpuAskedForWithoutOneIsAnErrorNotAFallback) {
  EXPECT_THROW_WITH(resolve_device("cuda", 0, 0), "no CUDA device");
  EXPECT_THROW_WITH(resolve_device("cuda:0", 0, 0), "no CUDA device");
  EXPECT_THROW_WITH(resolve_device("cuda:2", 0, 2), "only 2 CUDA devices");
  EXPECT_THROW_WITH(resolve_device("gpu"), "auto, cpu, cuda or cuda:N");
  EXPECT_THROW_WITH(resolve_device("cuda:x"), "GPU number");
}

TEST(ApiSemanticExtractor, EqualsTheModelOnTheHfPreprocessing) {
  const std::string dir = fixture("dinov3/tiny-mlp");
  weights::SafetensorsFile pre(fixture("preprocess/landscape.safetensors"));
  const torch::Tensor image = pre.get("image_hwc_rgb_u8");
  SemanticExtractor extractor(dir);
  EXPECT_EQ(extractor.device(), torch::cuda::is_available() ? "cuda:0" : "cpu");
  EXPECT_EQ(extractor.feature_dim(), 96);
  const SemanticFeatures f = extractor({image, image.flip(1).contiguous()});
  ASSERT_EQ(f.patch_tokens.sizes(), (std::vector<int64_t>{2, 14, 14, 96}));
  ASSERT_EQ(f.cls.sizes(), (std::vector<int64_t>{2, 96}));

  auto model = models::load_dinov3(dir);
  torch::InferenceMode guard;
  const models::DinoV3Output ref = model->forward(pre.get("pixel_values"));  // the HF pipeline's
  EXPECT_LE(test::rel_error(f.patch_tokens.cpu()[0], ref.patch_tokens[0]), 1e-4);
  EXPECT_LE(test::rel_error(f.cls.cpu()[0], ref.pooler_output[0]), 1e-4);
}

TEST(ApiSemanticExtractor, WrongInputIsAnInvalidArgumentNamingTheImage) {
  SemanticExtractor extractor(fixture("dinov3/tiny-mlp"));
  EXPECT_THROW(extractor({}), InvalidArgument);
  const torch::Tensor good = torch::zeros({8, 8, 3}, torch::kUInt8),
                      floats = torch::zeros({8, 8, 3});
  EXPECT_THROW_WITH((extractor({good, floats})), "image 1", "uint8");
  EXPECT_THROW(extractor({torch::zeros({3, 8, 8}, torch::kUInt8)}), InvalidArgument);
  EXPECT_THROW(extractor({torch::zeros({0, 8, 3}, torch::kUInt8)}), InvalidArgument);
  SemanticExtractorOptions odd_size;
  odd_size.height = 50;  // not a multiple of the patch size
  EXPECT_THROW_WITH(SemanticExtractor(fixture("dinov3/tiny-mlp"), odd_size), "16");
}

TEST(ApiMotionExtractor, ClipFeaturesAndClassNames) {
  MotionExtractorOptions o;
  o.short_side = o.crop = 193;
  MotionExtractor i3d(fixture("i3d/rgb/model.safetensors"), o);
  EXPECT_EQ(i3d.num_classes(), 7);
  EXPECT_TRUE(i3d.class_names().empty());
  const torch::Tensor clip = torch::randint(0, 256, {10, 200, 232, 3}).to(torch::kUInt8);
  const MotionFeatures f = i3d(clip);
  EXPECT_EQ(f.mixed_5c.size(1), 1024);
  EXPECT_EQ(f.logits_mean.sizes(), (std::vector<int64_t>{1, 7}));
  const auto top = i3d.top_k(f.logits, 3);
  ASSERT_EQ(top.size(), 1u);
  ASSERT_EQ(top[0].size(), 3u);
  EXPECT_GE(top[0][0].score, top[0][1].score);
  EXPECT_EQ(top[0][0].name, "class " + std::to_string(top[0][0].index));
  EXPECT_THROW(i3d(torch::zeros({10, 64, 64, 3})), InvalidArgument);
  EXPECT_THROW_WITH(i3d(torch::zeros({4, 256, 256, 3}, torch::kUInt8)), "9");

  const auto& names = kinetics400_class_names();
  ASSERT_EQ(names.size(), 400u);
  EXPECT_EQ(names.front(), "abseiling");
  EXPECT_EQ(names[227], "playing cricket");
  EXPECT_EQ(names.back(), "zumba");
}

}  // namespace
}  // namespace vidfuse
