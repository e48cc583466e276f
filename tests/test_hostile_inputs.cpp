// Inputs a hostile or careless user gives (issue 29): deep JSON, sizes that wrap or are absurd,
// empty batches, megabyte-long values. Each must end in a vidfuse::Error that names the file (and
// key or entry) before anything large is allocated or any kernel runs: never a signal, a
// bad_alloc or a library message standing alone. The pickle and zip cases are in
// test_torch_pickle.cpp (TorchPickleHostile), the random mutations in test_fuzz_smoke.cpp.
#include <sys/wait.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/quote.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/models/dinov3.h"
#include "vidfuse/models/fusion.h"
#include "vidfuse/models/fusion_config.h"
#include "vidfuse/models/i3d.h"
#include "vidfuse/weights/safetensors.h"

using namespace vidfuse;
using vidfuse::test::ScratchDir;
namespace fs = std::filesystem;

namespace {

// Appended piece by piece: GCC 12 warns (-Warray-bounds, spuriously) about the inlined
// `string + literal` chain of test::fixture() with some of these literals.
[[gnu::noinline]] std::string fixture(const std::string& rel) {
  std::string path(VIDFUSE_SHARED_DIR);
  path.append("/fixtures/").append(rel);
  return path;
}

void write_text(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  vidfuse::test::write_bytes(path, text);
}

// The message of the vidfuse::Error that `f` throws ("" and a failure when it throws none).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "a non-vidfuse exception: " << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

// A safetensors file of `header` and no data: the 8-byte little-endian length, then the header.
std::string safetensors_of(const std::string& header) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(header.size() >> (8 * i));
  return bytes + header;
}

std::string nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// A DINOv3 directory: the tiny-mlp fixture's weights (linked, not copied) and `config`.
std::string dinov3_dir(const ScratchDir& dir, const std::string& name,
                       const nlohmann::json& config) {
  const fs::path d = dir / name;
  fs::create_directories(d);
  fs::create_symlink(fixture("dinov3/tiny-mlp/model.safetensors"), d / "model.safetensors");
  write_text((d / "config.json").string(), config.dump());
  return d.string();
}

nlohmann::json tiny_mlp_config() {
  std::ifstream in(fixture("dinov3/tiny-mlp/config.json"));
  return nlohmann::json::parse(in);
}

}  // namespace

// ---- quoting ----------------------------------------------------------------------------------

TEST(HostileQuote, ShortensAndEscapes) {
  EXPECT_EQ(quoted_short("abc"), "'abc'");
  EXPECT_EQ(quoted_short(std::string("a\xff\n", 3)), "'a\\xff\\x0a'");
  EXPECT_EQ(quoted_short("héllo"), "'héllo'");  // UTF-8 kept whole
  const std::string q = quoted_short(std::string(20 << 20, 'x'));
  EXPECT_LT(q.size(), 120u) << q;
  EXPECT_NE(q.find("…' (20971520 bytes)"), std::string::npos) << q;
  EXPECT_TRUE(is_valid_utf8("héllo"));
  EXPECT_FALSE(is_valid_utf8("\xc0\xaf"));      // overlong '/'
  EXPECT_FALSE(is_valid_utf8("\xed\xa0\x80"));  // a surrogate
  EXPECT_FALSE(is_valid_utf8("ab\xe2\x82"));    // truncated
}

// ---- JSON nesting -----------------------------------------------------------------------------

TEST(HostileJson, DeepNestingIsRefusedNamingTheFile) {
  ScratchDir dir;
  // 200k levels of '[': a stack overflow (SIGSEGV) in train --config, predict and eval.
  write_text(dir / "deep.json", nested(200000));
  const std::string msg = error_of([&] { read_json_file(dir / "deep.json", "config file"); });
  EXPECT_NE(msg.find(dir / "deep.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("nested deeper than 256 levels"), std::string::npos) << msg;
  // Text given directly (checkpoint metadata) says where it came from.
  EXPECT_THROW_WITH(parse_json_text(nested(1000), "ckpt.safetensors: metadata 'config'"),
                    "ckpt.safetensors: metadata 'config'", "nested deeper");
  // Real nesting, and brackets inside strings, are fine.
  EXPECT_NO_THROW(parse_json_text(nested(kMaxJsonDepth), "ok"));
  EXPECT_NO_THROW(parse_json_text("{\"a\": \"" + std::string(5000, '[') + "\\\"[\"}", "ok"));
  EXPECT_THROW_WITH(parse_json_text(nested(kMaxJsonDepth + 1), "x.json"), "x.json");
}

TEST(HostileJson, DeepSafetensorsHeaderIsRefused) {
  ScratchDir dir;
  write_text(dir / "deep.safetensors",
             safetensors_of("{\"__metadata__\": " + nested(100000) + "}"));
  EXPECT_THROW_WITH(weights::SafetensorsFile(dir / "deep.safetensors"), dir / "deep.safetensors",
                    "header", "nested deeper");
}

// ---- sizes ------------------------------------------------------------------------------------

TEST(HostileSafetensors, ElementBytesThatWrapAreRefused) {
  ScratchDir dir;
  // F64 [2^31, 2^30]: 2^61 elements x 8 bytes wrapped to 0 and matched the empty data section.
  write_text(dir / "wrap.safetensors",
             safetensors_of(
                 R"({"a":{"dtype":"F64","shape":[2147483648,1073741824],"data_offsets":[0,0]}})"));
  EXPECT_THROW_WITH(weights::load_safetensors(dir / "wrap.safetensors"), dir / "wrap.safetensors",
                    "tensor 'a'", "more bytes than a 64-bit size can count");
}

TEST(HostileSafetensors, NonUtf8NamesAreNamedWhenWriting) {
  ScratchDir dir;
  EXPECT_THROW_WITH(weights::save_safetensors(dir / "o.safetensors",
                                              {{std::string("w\xe9", 2), torch::ones({1})}}),
                    dir / "o.safetensors", "'w\\xe9'", "UTF-8");
}

TEST(HostileDinoV3, AbsurdConfigIsRefusedBeforeTheModelIsBuilt) {
  ScratchDir dir;
  const auto start = std::chrono::steady_clock::now();
  auto config = tiny_mlp_config();
  config["intermediate_size"] = 2000000;  // allocated 5.1 GB before the shape error
  std::string d = dinov3_dir(dir, "mlp", config);
  EXPECT_THROW_WITH(models::load_dinov3(d), d + "/config.json", "intermediate_size 2000000");
  config = tiny_mlp_config();
  config["patch_size"] = 1000000;  // tried to allocate 1.15e15 bytes
  d = dinov3_dir(dir, "patch", config);
  EXPECT_THROW_WITH(models::load_dinov3(d), d + "/config.json", "patch_size 1000000");
  // In range, but not what the weights hold: refused from the weights' shapes, before building.
  config = tiny_mlp_config();
  config["intermediate_size"] = 100000;
  d = dinov3_dir(dir, "mismatch", config);
  EXPECT_THROW_WITH(models::load_dinov3(d), d + "/config.json",
                    "gives layer.0.mlp.up_proj.weight the shape [100000, 96]", "[256, 96]");
  config = tiny_mlp_config();
  config["num_hidden_layers"] = 1000;
  d = dinov3_dir(dir, "layers", config);
  EXPECT_THROW_WITH(models::load_dinov3(d), d + "/config.json", "layer.3.attention.q_proj.weight",
                    "do not have");
  config = tiny_mlp_config();
  config["hidden_size"] = 1e300;  // not an int64: converting it was undefined behaviour
  d = dinov3_dir(dir, "huge", config);
  EXPECT_THROW_WITH(models::load_dinov3(d), d + "/config.json",
                    "\"hidden_size\" must be an integer");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(60));
}

TEST(HostileDinoV3, EmptyOrTooSmallInputsAreRefusedBeforeAnyKernel) {
  auto model = models::load_dinov3(fixture("dinov3/tiny-mlp"));
  for (bool fused : {false, true}) {
    SCOPED_TRACE(fused ? "fused" : "plain");
    if (fused) model->fuse_for_inference();
    torch::InferenceMode guard;
    // Batch 0 reached a division by the batch size in the fused layers: SIGFPE.
    EXPECT_THROW_WITH(model->forward(torch::zeros({0, 3, 64, 96})), "[0, 3, 64, 96]",
                      "hold no images");
    EXPECT_THROW_WITH(model->forward(torch::zeros({1, 3, 8, 64})), "smaller than one 16x16 patch");
    EXPECT_THROW_WITH(model->forward(torch::zeros({1, 4, 32, 32})), "expects pixel_values [B, 3");
  }
}

TEST(HostileDinoV3, ForwardCommandNamesTheInputFile) {
  ScratchDir dir;
  weights::save_safetensors(dir / "empty.safetensors",
                            {{"pixel_values", torch::zeros({0, 3, 64, 96})}});
  const std::string cmd = std::string(VIDFUSE_CLI) + " forward --model " +
                          fixture("dinov3/tiny-mlp") + " --input " + (dir / "empty.safetensors") +
                          " --output " + (dir / "out.safetensors") + " > " + (dir / "log") +
                          " 2>&1";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by a signal";
  EXPECT_EQ(WEXITSTATUS(status), 2);
  std::ifstream in(dir / "log");
  const std::string log{std::istreambuf_iterator<char>(in), {}};
  EXPECT_NE(log.find(dir / "empty.safetensors"), std::string::npos) << log;
  EXPECT_NE(log.find("hold no images"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "out.safetensors"));
}

TEST(HostileI3D, EmptyBatchIsRefusedWithTheRule) {
  models::I3DConfig config;
  config.width = 0.125;  // small and quick; the checks do not depend on the width
  models::InceptionI3d model(config);
  model->eval();
  torch::InferenceMode guard;
  EXPECT_THROW_WITH(model->forward(torch::zeros({0, 3, 9, 193, 193})), "[0, 3, 9, 193, 193]",
                    "B >= 1");
  EXPECT_THROW_WITH(model->forward(torch::zeros({1, 3, 0, 224, 224})), "T >= 9");
}

TEST(HostileFusion, EmptyInputsAreRefused) {
  models::FusionConfig c;
  c.semantic_dim = 6;
  c.motion_dim = 5;
  c.semantic_grid = {2, 2, 2};
  c.motion_grid = {2, 2, 2};
  c.semantic_pool = 1;
  c.width = 8;
  c.heads = 2;
  c.depth = 1;
  c.pool_queries = 2;
  c.num_classes = 3;
  auto model = models::FusionModel(c);
  models::FusionInput in;
  in.semantic = torch::zeros({0, 2, 2, 2, 6});
  in.semantic_cls = torch::zeros({0, 2, 6});
  in.motion = torch::zeros({0, 5, 2, 2, 2});
  EXPECT_THROW_WITH(model->forward(in), "semantic features [0, 2, 2, 2, 6] are empty");
  in.semantic = torch::zeros({1, 0, 2, 2, 6});
  in.semantic_cls = torch::zeros({1, 0, 6});
  in.motion = torch::zeros({1, 5, 2, 2, 2});
  EXPECT_THROW_WITH(model->forward(in), "are empty");
  in.semantic = torch::zeros({1, 2, 2, 2, 6});
  in.semantic_cls = torch::zeros({1, 2, 6});
  in.motion = torch::zeros({1, 5, 0, 2, 2});
  EXPECT_THROW_WITH(model->forward(in), "motion features [1, 5, 0, 2, 2] are empty");
}

TEST(HostileSettings, AbsurdSizesAreRefusedByTheFieldTable) {
  // depth 1e18 in a training config held 5.9 GB before failing.
  EXPECT_THROW_WITH(
      models::fusion_config_from_json({{"depth", 1e18}}, "run.json: model"),
      "run.json: model: depth must be <= 256 (a sanity bound), got 1000000000000000000");
  EXPECT_THROW_WITH(models::fusion_config_from_json({{"width", 1LL << 40}}, "m.json"),
                    "m.json: width must be <= 65536");
  EXPECT_THROW_WITH(models::fusion_config_from_json({{"motion_grid", {8, 7, 1e9}}}, "m.json"),
                    "m.json: motion_grid entries must be <= 4096");
  // Integers that do not fit int64 are a type error, not a conversion with undefined behaviour.
  EXPECT_THROW_WITH(models::fusion_config_from_json({{"depth", 1e300}}, "m.json"),
                    "\"depth\" must be an integer");
  EXPECT_THROW_WITH(
      models::fusion_config_from_json({{"depth", std::numeric_limits<uint64_t>::max()}}, "m.json"),
      "\"depth\" must be an integer");
  // A hostile key or value is quoted shortened.
  const std::string msg = error_of([] {
    models::fusion_config_from_json({{std::string(1 << 20, 'k'), 1}}, "m.json");
  });
  EXPECT_LT(msg.size(), 600u) << msg.substr(0, 600);
  const std::string value = error_of([] {
    models::fusion_config_from_json({{"width", std::string(1 << 20, 'w')}}, "m.json");
  });
  EXPECT_LT(value.size(), 600u) << value.substr(0, 600);
}

// ---- manifests --------------------------------------------------------------------------------

TEST(HostileManifest, LongValuesAreQuotedShortened) {
  ScratchDir dir;
  const std::string big(20 << 20, 'z');  // a 20 MB field used to be printed whole
  write_text(dir / "list.txt", "a.mp4 " + big + "\n");
  std::string msg = error_of([&] { data::read_manifest(dir / "list.txt"); });
  EXPECT_NE(msg.find(dir / "list.txt"), std::string::npos);
  EXPECT_NE(msg.find("line 1: label 'zzz"), std::string::npos) << msg.substr(0, 300);
  EXPECT_NE(msg.find("(20971520 bytes) is not a class index"), std::string::npos)
      << msg.substr(0, 300);
  EXPECT_LT(msg.size(), 400u);
  write_text(dir / "ssv2.json", "[{\"id\": \"" + big + "\"}, {\"id\": \"" + big + "\"}]");
  msg = error_of([&] { data::read_manifest(dir / "ssv2.json"); });
  EXPECT_NE(msg.find("duplicate video id 'zzz"), std::string::npos) << msg.substr(0, 300);
  EXPECT_LT(msg.size(), 500u);
  write_text(dir / "k.csv", "label,youtube_id,time_start,time_end\nx,abc," + big + ",10\n");
  msg = error_of([&] { data::read_manifest(dir / "k.csv"); });
  EXPECT_NE(msg.find("line 2"), std::string::npos) << msg.substr(0, 300);
  EXPECT_LT(msg.size(), 400u);
}
