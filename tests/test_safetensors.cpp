#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/weights/checkpoint.h"
#include "vidfuse/weights/safetensors.h"

using namespace vidfuse;
using vidfuse::test::read_bytes;
using vidfuse::test::ScratchDir;
using vidfuse::test::write_bytes;

namespace {

// A raw file: 8-byte length, the given header text, then `data_bytes` zero bytes.
std::string raw_file(const std::string& header, size_t data_bytes,
                     uint64_t claimed_len = UINT64_MAX) {
  uint64_t n = claimed_len == UINT64_MAX ? header.size() : claimed_len;
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>(n >> (8 * i));
  return out + header + std::string(data_bytes, '\0');
}

}  // namespace

TEST(Safetensors, RoundTripsEveryDtypeAndMetadata) {
  ScratchDir dir;
  weights::TensorMap t = {
      {"f32", torch::randn({2, 3})},
      {"f64", torch::randn({4}, torch::kFloat64)},
      {"f16", torch::randn({3, 1}).to(torch::kFloat16)},
      {"bf16", torch::randn({5}).to(torch::kBFloat16)},
      {"i64", torch::arange(6, torch::kInt64).view({2, 3})},
      {"i32", torch::arange(4, torch::kInt32)},
      {"u8", torch::arange(7, torch::kUInt8)},
      {"bool", torch::tensor({true, false})},
      {"scalar", torch::tensor(3.5)},
      {"empty", torch::zeros({0, 4})},
      {"transposed_view", torch::randn({3, 4}).t()},
  };
  weights::save_safetensors(dir / "a.safetensors", t, {{"k", "v"}});
  auto back = weights::load_safetensors(dir / "a.safetensors");
  ASSERT_EQ(back.size(), t.size());
  for (const auto& [name, tensor] : t) {
    EXPECT_EQ(back.at(name).scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back.at(name), tensor)) << name;
  }
  EXPECT_EQ(weights::load_safetensors_metadata(dir / "a.safetensors").at("k"), "v");
  // Conversion on load touches floats only.
  auto f32 = weights::load_safetensors(dir / "a.safetensors", torch::kFloat32);
  EXPECT_EQ(f32.at("bf16").scalar_type(), torch::kFloat32);
  EXPECT_EQ(f32.at("i64").scalar_type(), torch::kInt64);
  // Data section is 8-byte aligned like the reference writer's.
  const std::string bytes = read_bytes(dir / "a.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(n % 8, 0u);
}

TEST(Safetensors, ReadsTheReferenceWritersFiles) {
  auto t = weights::load_safetensors(test::fixture("dinov3/tiny-gated-bf16/model.safetensors"));
  EXPECT_EQ(t.size(), 45u);  // 45 tensors + __metadata__
  EXPECT_EQ(t.at("embeddings.cls_token").scalar_type(), torch::kBFloat16);
  auto p = weights::load_safetensors(test::fixture("preprocess/upscale.safetensors"));
  EXPECT_EQ(p.at("image_hwc_rgb_u8").scalar_type(), torch::kUInt8);
}

TEST(Safetensors, AtomicWriteLeavesNoTempFiles) {
  ScratchDir dir;
  weights::save_safetensors(dir / "x.safetensors", {{"a", torch::ones({3})}});
  weights::save_safetensors(dir / "x.safetensors", {{"a", torch::zeros({3})}});
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir.path())) files += e.is_regular_file();
  EXPECT_EQ(files, 1);
  EXPECT_TRUE(
      torch::equal(weights::load_safetensors(dir / "x.safetensors").at("a"), torch::zeros({3})));
  // An unwritable destination is a clear error naming it.
  EXPECT_THROW_WITH(
      weights::save_safetensors(dir / "no/such/dir/y.safetensors", {{"a", torch::ones({1})}}),
      "no/such/dir/y.safetensors");
}

struct Malformed {
  const char* name;
  std::string bytes;
  std::string expected_message;
};

TEST(Safetensors, MalformedFilesGiveTheirOwnClearError) {
  ScratchDir dir;
  weights::save_safetensors(dir / "good.safetensors",
                            {{"w", torch::ones({4, 4})}, {"b", torch::ones({4})}});
  const std::string good = read_bytes(dir / "good.safetensors");
  const std::string h1 = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  std::vector<Malformed> cases = {
      {"empty", "", "shorter than the 8-byte header length"},
      {"tiny", "abc", "shorter than the 8-byte header length"},
      {"truncated_data", good.substr(0, good.size() - 10), "out of range"},
      {"truncated_header", good.substr(0, 20), "runs past the end"},
      {"header_len_past_end", raw_file(h1, 8, 1ull << 40), "runs past the end"},
      {"bad_json", raw_file("{\"a\": [1, 2", 8), "not valid JSON"},
      {"not_object", raw_file("[1,2,3]", 0), "not a JSON object"},
      {"unknown_dtype", raw_file(R"({"a":{"dtype":"F128","shape":[2],"data_offsets":[0,8]}})", 8),
       "unknown safetensors dtype 'F128'"},
      {"offset_out_of_range",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}})", 8), "out of range"},
      {"offsets_reversed", raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8),
       "out of range"},
      {"size_mismatch", raw_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8),
       "needs 12"},
      {"overlap",
       raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                12),
       "overlap"},
      {"missing_field", raw_file(R"({"a":{"dtype":"F32","shape":[2]}})", 8), "data_offsets"},
      {"negative_dim", raw_file(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8),
       "negative"},
      {"bad_metadata", raw_file(R"({"__metadata__":{"k":1}})", 0), "__metadata__"},
  };
  for (const auto& c : cases) {
    const std::string path = dir / (std::string(c.name) + ".safetensors");
    write_bytes(path, c.bytes);
    EXPECT_THROW_WITH(weights::load_safetensors(path), path, c.expected_message);
  }
  EXPECT_THROW_WITH(weights::load_safetensors(dir / "absent.safetensors"), "absent.safetensors",
                    "cannot open");
}

TEST(Checkpoint, ShardedHfDirectoryIsAssembled) {
  ScratchDir dir;
  weights::save_safetensors(dir / "model-00001-of-00002.safetensors", {{"a", torch::ones({2})}});
  weights::save_safetensors(dir / "model-00002-of-00002.safetensors", {{"b", torch::zeros({3})}});
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})";
  auto t = weights::read_checkpoint(dir.path().string());
  ASSERT_EQ(t.size(), 2u);
  EXPECT_TRUE(torch::equal(t.at("b"), torch::zeros({3})));
  // An index that names a tensor its shard lacks is an error naming the shard and the tensor.
  std::ofstream(dir / "model.safetensors.index.json")
      << R"({"weight_map":{"a":"model-00001-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})";
  EXPECT_THROW_WITH(weights::read_checkpoint(dir.path().string()), "model-00002-of-00002", "'c'");
}
