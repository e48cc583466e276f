#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "vidfuse/models/cpu_kernels.h"
#include "vidfuse/models/dinov3.h"
#include "vidfuse/weights/safetensors.h"
#include "vidfuse/weights/state_dict.h"

using namespace vidfuse;
using vidfuse::test::fixture;
using vidfuse::test::rel_error;

namespace {

struct Case {
  std::string dir;
};

const char* attention_name(models::AttentionKernel k) {
  return k == models::AttentionKernel::Fused ? "fused" : vidfuse::test::kernel_name(k);
}

void check_parity_with(const std::string& name, torch::ScalarType dtype, bool fused, double tol,
                       models::AttentionKernel kernel, torch::Device device = torch::kCPU) {
  vidfuse::test::AttentionKernelScope use(kernel);
  const std::string dir = fixture("dinov3/" + name);
  auto model = models::load_dinov3(dir, dtype);
  model->to(device);
  // Two threads: the fused path's oneDNN linear layers take their oneDNN kernel only with more
  // than one (a 1x1 convolution of batch 1 otherwise goes to ATen's own).
  vidfuse::test::ThreadCountScope threads(2);
  if (fused) {
    model->fuse_for_inference();
    if (const char* set = std::getenv("VIDFUSE_DINOV3_KERNELS")) {
      EXPECT_STREQ(models::dinov3_kernels_name(model->kernels()), set);
    }
  }
  auto input = weights::load_safetensors(dir + "/input.safetensors").at("pixel_values");
  auto expected = weights::load_safetensors(dir + "/expected.safetensors");
  torch::InferenceMode guard;
  auto out = model->forward(input.to(device, dtype));
  for (auto* t : {&out.last_hidden_state, &out.pooler_output, &out.patch_tokens}) *t = t->cpu();
  const double e_last =
      rel_error(out.last_hidden_state.to(torch::kFloat32), expected.at("last_hidden_state"));
  const double e_pool =
      rel_error(out.pooler_output.to(torch::kFloat32), expected.at("pooler_output"));
  EXPECT_LE(e_last, tol) << name << " last_hidden_state, " << attention_name(kernel);
  EXPECT_LE(e_pool, tol) << name << " pooler_output, " << attention_name(kernel);
  // The patch grid is the tail of last_hidden_state, row-major.
  const auto& c = model->config();
  const int64_t h = input.size(2) / 16, w = input.size(3) / 16;
  ASSERT_EQ(out.patch_tokens.sizes(), (std::vector<int64_t>{input.size(0), h, w, c.hidden_size}));
  auto tail = expected.at("last_hidden_state").narrow(1, 1 + c.num_register_tokens, h * w);
  EXPECT_LE(
      rel_error(out.patch_tokens.reshape({input.size(0), h * w, -1}).to(torch::kFloat32), tail),
      tol);
}

// Every fixture on each attention kernel: SDPA (LibTorch's fused kernel), the per-head path and
// the fused CPU kernel (cpu_kernels.h; per-head where the CPU lacks AVX-512), with LayerNorm
// from torch and from rows_layer_norm, RoPE in its own pass and inside the fused kernel; the fused
// path also on each of its kernel sets (LibTorch's, oneDNN's own where linked in, vidfuse's GEMM
// where the CPU has AVX-512).
void check_parity(const std::string& name, torch::ScalarType dtype, bool fused, double tol) {
  std::vector<const char*> kernel_sets = {"torch"};
  if (fused && gemm_kernel_available(vidfuse::GemmKernel::Onednn, dtype, torch::kCPU))
    kernel_sets.push_back("onednn");
  if (fused && gemm_kernel_available(vidfuse::GemmKernel::Vidfuse, dtype, torch::kCPU))
    kernel_sets.push_back("vidfuse");
  for (const char* set : kernel_sets) {
    vidfuse::test::EnvScope env("VIDFUSE_DINOV3_KERNELS", set);
    SCOPED_TRACE(std::string("VIDFUSE_DINOV3_KERNELS=") + set);
    for (const char* ln : {"torch", "rows"}) {
      vidfuse::test::EnvScope ln_env("VIDFUSE_LAYERNORM", ln);
      SCOPED_TRACE(std::string("VIDFUSE_LAYERNORM=") + ln);
      for (const auto kernel : {models::AttentionKernel::Sdpa, models::AttentionKernel::PerHead,
                                models::AttentionKernel::Fused})
        check_parity_with(name, dtype, fused, tol, kernel);
      // RoPE applied inside the fused kernel (fused_rope_attention) instead of rope_qkv's pass.
      vidfuse::test::EnvScope rope_env("VIDFUSE_ROPE", "attention");
      SCOPED_TRACE("VIDFUSE_ROPE=attention");
      check_parity_with(name, dtype, fused, tol, models::AttentionKernel::Fused);
    }
  }
}

}  // namespace

TEST(DinoV3Parity, TinyMlpFp32) { check_parity("tiny-mlp", torch::kFloat32, false, 1e-4); }
TEST(DinoV3Parity, TinyMlpFp32Fused) { check_parity("tiny-mlp", torch::kFloat32, true, 1e-4); }
TEST(DinoV3Parity, TinyMlpBf16) { check_parity("tiny-mlp", torch::kBFloat16, false, 3e-2); }
TEST(DinoV3Parity, TinyMlpBf16Fused) { check_parity("tiny-mlp", torch::kBFloat16, true, 3e-2); }
TEST(DinoV3Parity, TinyGatedFp32) { check_parity("tiny-gated-bf16", torch::kFloat32, false, 1e-4); }
TEST(DinoV3Parity, TinyGatedFp32Fused) {
  check_parity("tiny-gated-bf16", torch::kFloat32, true, 1e-4);
}
TEST(DinoV3Parity, TinyGatedBf16) {
  check_parity("tiny-gated-bf16", torch::kBFloat16, false, 3e-2);
}
TEST(DinoV3Parity, TinyGatedBf16Fused) {
  check_parity("tiny-gated-bf16", torch::kBFloat16, true, 3e-2);
}

// On a GPU (scripts/gpu-check.sh): SDPA's flash / memory-efficient kernels and the per-head path.
TEST(DinoV3ParityCuda, Fp32AndBf16BothKernels) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  for (const auto kernel : vidfuse::test::kBothKernels)
    for (const bool fused : {false, true}) {
      check_parity_with("tiny-mlp", torch::kFloat32, fused, 1e-4, kernel, torch::kCUDA);
      check_parity_with("tiny-mlp", torch::kBFloat16, fused, 3e-2, kernel, torch::kCUDA);
      check_parity_with("tiny-gated-bf16", torch::kFloat32, fused, 1e-4, kernel, torch::kCUDA);
      check_parity_with("tiny-gated-bf16", torch::kBFloat16, fused, 3e-2, kernel, torch::kCUDA);
    }
}

// Row `row` of a batched forward equals that image's forward alone (1e-5); returns the batch's
// last_hidden_state.
static torch::Tensor expect_row_as_if_alone(models::DinoV3ViT& model, const torch::Tensor& x,
                                            int64_t row) {
  const torch::Tensor batched = model->forward(x).last_hidden_state;
  const torch::Tensor single = model->forward(x.narrow(0, row, 1)).last_hidden_state;
  EXPECT_LE(rel_error(batched.narrow(0, row, 1), single), 1e-5);
  return batched;
}

TEST(DinoV3Kernels, ForcedByTheEnvironmentAndUnknownNamesRefused) {
  {
    vidfuse::test::EnvScope env("VIDFUSE_DINOV3_KERNELS", "torch");
    EXPECT_EQ(models::dinov3_kernels(torch::kFloat32, torch::kCPU), models::DinoV3Kernels::Torch);
  }
  {
    vidfuse::test::EnvScope env("VIDFUSE_DINOV3_KERNELS", "mkl");
    EXPECT_THROW_WITH(models::dinov3_kernels(torch::kFloat32, torch::kCPU),
                      "VIDFUSE_DINOV3_KERNELS", "mkl", "torch, onednn or vidfuse");
  }
  for (auto [name, gemm, set] :
       {std::tuple{"onednn", vidfuse::GemmKernel::Onednn, models::DinoV3Kernels::Onednn},
        std::tuple{"vidfuse", vidfuse::GemmKernel::Vidfuse, models::DinoV3Kernels::Vidfuse}}) {
    vidfuse::test::EnvScope env("VIDFUSE_DINOV3_KERNELS", name);
    if (gemm_kernel_available(gemm, torch::kFloat32, torch::kCPU))
      EXPECT_EQ(models::dinov3_kernels(torch::kFloat32, torch::kCPU), set);
    else
      EXPECT_THROW_WITH(models::dinov3_kernels(torch::kFloat32, torch::kCPU), name,
                        "not available");
  }
}

// The fused-epilogue sets update the residual stream in place; a batch of one and a batch of
// three must still agree row for row (oneDNN's primitive is cached per row count; vidfuse's tiles
// fall differently on the rows).
TEST(DinoV3Kernels, FusedSetsBatchedAndSingleAgree) {
  for (auto [name, gemm, set] :
       {std::tuple{"onednn", vidfuse::GemmKernel::Onednn, models::DinoV3Kernels::Onednn},
        std::tuple{"vidfuse", vidfuse::GemmKernel::Vidfuse, models::DinoV3Kernels::Vidfuse}}) {
    if (!gemm_kernel_available(gemm, torch::kFloat32, torch::kCPU)) continue;
    SCOPED_TRACE(name);
    vidfuse::test::EnvScope env("VIDFUSE_DINOV3_KERNELS", name);
    auto model = models::load_dinov3(fixture("dinov3/tiny-gated-bf16"));
    model->fuse_for_inference();
    ASSERT_EQ(model->kernels(), set);
    torch::manual_seed(0);
    auto x = torch::randn({3, 3, 48, 64});
    torch::InferenceMode guard;
    const torch::Tensor batched = expect_row_as_if_alone(model, x, 2);
    model->unfuse();
    EXPECT_LE(rel_error(model->forward(x).last_hidden_state, batched), 1e-4);
  }
}

// RoPE in its own pass (rope_qkv) and inside the fused attention kernel (fused_rope_attention)
// run the same rotation (rope_rotate_rows) and the same attention arithmetic: the whole forward
// must agree bit for bit, in both dtypes, the prefix tokens (CLS + registers) included.
TEST(DinoV3Kernels, RopePassAndRopeInAttentionAgreeBitForBit) {
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    if (!onednn_matmul_available(dtype, torch::kCPU)) GTEST_SKIP() << "no oneDNN";
    vidfuse::test::EnvScope env("VIDFUSE_DINOV3_KERNELS", "onednn");
    vidfuse::test::AttentionKernelScope use(models::AttentionKernel::Fused);
    auto model = models::load_dinov3(fixture("dinov3/tiny-gated-bf16"), dtype);
    model->fuse_for_inference();
    torch::manual_seed(0);
    auto x = torch::randn({2, 3, 48, 64}).to(dtype);
    auto probe = torch::zeros({1, 1, 4, 64}, x.options());
    if (!models::fused_attention_supports(probe, probe, probe)) GTEST_SKIP() << "no AVX-512";
    torch::InferenceMode guard;
    torch::Tensor pass, in_attention;
    {
      vidfuse::test::EnvScope rope("VIDFUSE_ROPE", "pass");
      pass = model->forward(x).last_hidden_state;
    }
    {
      vidfuse::test::EnvScope rope("VIDFUSE_ROPE", "attention");
      in_attention = model->forward(x).last_hidden_state;
    }
    EXPECT_TRUE(torch::equal(pass, in_attention))
        << c10::toString(dtype) << ": differ by " << rel_error(in_attention, pass);
  }
}

TEST(DinoV3, RefusesFp16WithReason) {
  EXPECT_THROW_WITH(models::load_dinov3(fixture("dinov3/tiny-mlp"), torch::kFloat16), "fp16",
                    "overflow");
}

TEST(DinoV3, IntermediateLayersAreNormalisedLayerOutputs) {
  auto model = models::load_dinov3(fixture("dinov3/tiny-mlp"));
  auto input =
      weights::load_safetensors(fixture("dinov3/tiny-mlp/input.safetensors")).at("pixel_values");
  torch::InferenceMode guard;
  auto out = model->forward(input, {-1, 0});
  ASSERT_EQ(out.intermediate.size(), 2u);
  // The last layer's output normalised by the final norm is last_hidden_state itself.
  EXPECT_LE(rel_error(out.intermediate[0], out.last_hidden_state), 1e-6);
  EXPECT_GT(rel_error(out.intermediate[1], out.last_hidden_state), 1e-2);
  EXPECT_THROW_WITH(model->forward(input, {3}), "intermediate layer 3");
}

TEST(DinoV3, NonSquareAndBatchedInputsAreIndependent) {
  auto model = models::load_dinov3(fixture("dinov3/tiny-mlp"));
  model->fuse_for_inference();
  torch::manual_seed(0);
  auto x = torch::randn({3, 3, 48, 80});
  torch::InferenceMode guard;
  const torch::Tensor batched = expect_row_as_if_alone(model, x, 1);
  EXPECT_EQ(batched.sizes(), (std::vector<int64_t>{3, 1 + 4 + 15, 96}));
}

TEST(DinoV3, OriginalCheckpointNamingLoadsToTheSameModel) {
  // Re-express the HF fixture in facebookresearch naming (fused qkv, ls gamma, fc1/fc2) and load
  // it.
  auto hf = weights::load_safetensors(fixture("dinov3/tiny-mlp/model.safetensors"));
  weights::TensorMap orig;
  orig["cls_token"] = hf.at("embeddings.cls_token");
  orig["mask_token"] = hf.at("embeddings.mask_token").reshape({1, -1});
  orig["storage_tokens"] = hf.at("embeddings.register_tokens");
  orig["patch_embed.proj.weight"] = hf.at("embeddings.patch_embeddings.weight");
  orig["patch_embed.proj.bias"] = hf.at("embeddings.patch_embeddings.bias");
  orig["norm.weight"] = hf.at("norm.weight");
  orig["norm.bias"] = hf.at("norm.bias");
  orig["rope_embed.periods"] = torch::ones({8});
  for (int i = 0; i < 3; ++i) {
    const std::string h = "layer." + std::to_string(i) + ".",
                      o = "blocks." + std::to_string(i) + ".";
    orig[o + "attn.qkv.weight"] =
        torch::cat({hf.at(h + "attention.q_proj.weight"), hf.at(h + "attention.k_proj.weight"),
                    hf.at(h + "attention.v_proj.weight")});
    orig[o + "attn.qkv.bias"] = torch::cat({hf.at(h + "attention.q_proj.bias"), torch::zeros({96}),
                                            hf.at(h + "attention.v_proj.bias")});
    orig[o + "attn.qkv.bias_mask"] = torch::ones({288});
    orig[o + "attn.proj.weight"] = hf.at(h + "attention.o_proj.weight");
    orig[o + "attn.proj.bias"] = hf.at(h + "attention.o_proj.bias");
    orig[o + "ls1.gamma"] = hf.at(h + "layer_scale1.lambda1");
    orig[o + "ls2.gamma"] = hf.at(h + "layer_scale2.lambda1");
    for (const char* n : {"norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"})
      orig[o + n] = hf.at(h + n);
    orig[o + "mlp.fc1.weight"] = hf.at(h + "mlp.up_proj.weight");
    orig[o + "mlp.fc1.bias"] = hf.at(h + "mlp.up_proj.bias");
    orig[o + "mlp.fc2.weight"] = hf.at(h + "mlp.down_proj.weight");
    orig[o + "mlp.fc2.bias"] = hf.at(h + "mlp.down_proj.bias");
  }
  vidfuse::test::ScratchDir dir;
  weights::save_safetensors(dir / "original.safetensors", orig);
  // tiny-mlp has 3 heads of 32: the shape-inferred config would say 96/64 heads, so use the HF one.
  auto canon = models::dinov3_canonical_names(orig);
  models::DinoV3ViT model(models::DinoV3Config::from_file(fixture("dinov3/tiny-mlp/config.json")));
  weights::load_state_dict(*model, canon, {true, "original"});
  auto input =
      weights::load_safetensors(fixture("dinov3/tiny-mlp/input.safetensors")).at("pixel_values");
  auto expected = weights::load_safetensors(fixture("dinov3/tiny-mlp/expected.safetensors"));
  torch::InferenceMode guard;
  EXPECT_LE(rel_error(model->forward(input).last_hidden_state, expected.at("last_hidden_state")),
            1e-4);
}

namespace {
weights::TensorMap vitb16_random_checkpoint() {
  std::ifstream in(fixture("dinov3/vitb16-keys.json"));
  auto j = nlohmann::json::parse(in);
  weights::TensorMap state;
  torch::manual_seed(1);
  for (auto& [name, shape] : j["tensors"].items())
    state[name] = torch::randn(shape.get<std::vector<int64_t>>(), torch::kBFloat16);
  return state;
}
}  // namespace

TEST(DinoV3Checkpoint, VitB16KeySetLoadsIntoVitB16) {
  auto state = vitb16_random_checkpoint();
  ASSERT_EQ(state.size(), 211u);
  models::DinoV3ViT model(models::DinoV3Config::preset("vitb16"));
  weights::load_state_dict(*model, state, {true, "vitb16"});
  EXPECT_EQ(model->num_parameters(), 85660416);
  // Round trip through a HF directory on disk: config inferred from weights matches the preset.
  vidfuse::test::ScratchDir dir;
  weights::save_safetensors(dir / "model.safetensors", state);
  auto loaded = models::load_dinov3(dir / "model.safetensors");
  EXPECT_EQ(loaded->config().num_attention_heads, 12);
  EXPECT_EQ(loaded->config().num_register_tokens, 4);
  EXPECT_EQ(loaded->num_parameters(), 85660416);
}

TEST(DinoV3Checkpoint, MissingKeyIsNamed) {
  auto state = vitb16_random_checkpoint();
  state.erase("layer.7.attention.v_proj.bias");
  models::DinoV3ViT model(models::DinoV3Config::preset("vitb16"));
  EXPECT_THROW_WITH(weights::load_state_dict(*model, state, {true, "ckpt.safetensors"}),
                    "ckpt.safetensors", "missing", "layer.7.attention.v_proj.bias");
}

TEST(DinoV3Checkpoint, ShapeMismatchNamesKeyAndBothShapes) {
  auto state = vitb16_random_checkpoint();
  state["layer.3.mlp.up_proj.weight"] = torch::zeros({3000, 768});
  models::DinoV3ViT model(models::DinoV3Config::preset("vitb16"));
  EXPECT_THROW_WITH(weights::load_state_dict(*model, state, {true, "ckpt.safetensors"}),
                    "layer.3.mlp.up_proj.weight", "[3000, 768]", "[3072, 768]");
}

TEST(DinoV3Checkpoint, UnexpectedKeyIsNamed) {
  auto state = vitb16_random_checkpoint();
  state["layer.12.norm1.weight"] = torch::zeros({768});
  models::DinoV3ViT model(models::DinoV3Config::preset("vitb16"));
  EXPECT_THROW_WITH(weights::load_state_dict(*model, state, {true, "x"}), "unexpected",
                    "layer.12.norm1.weight");
}

TEST(DinoV3Config, BadConfigIsAClearError) {
  vidfuse::test::ScratchDir dir;
  std::ofstream(dir / "config.json")
      << R"({"model_type":"dinov3_vit","hidden_size":100,"num_attention_heads":3})";
  EXPECT_THROW_WITH(models::DinoV3Config::from_file(dir / "config.json"), "config.json",
                    "not divisible");
  std::ofstream(dir / "bad.json") << "{not json";
  EXPECT_THROW_WITH(models::DinoV3Config::from_file(dir / "bad.json"), "bad.json", "JSON");
}
