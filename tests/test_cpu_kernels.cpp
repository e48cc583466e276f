// The AVX-512 inference kernels (models/cpu_kernels.h) against ATen's arithmetic in float64.

#include "test_util.h"
#include "vidfuse/models/attention.h"
#include "vidfuse/models/cpu_kernels.h"
#include "vidfuse/models/dinov3.h"

using namespace vidfuse;
using vidfuse::test::rel_error;

namespace {

struct AttnShape {
  int64_t b, h, nq, nk, d;
};

// q [B, H, Nq, D] contiguous as RoPE writes it; k a transposed view of [B, Nk, H, D] and v a
// slice of a [B, Nk, 3, H, D] q|k|v-like tensor, as the models pass them.
std::vector<torch::Tensor> attention_inputs(const AttnShape& s, torch::ScalarType dtype) {
  torch::manual_seed(s.nq * 131 + s.nk * 7 + s.d);
  auto q = torch::randn({s.b, s.h, s.nq, s.d}).to(dtype);
  auto k = torch::randn({s.b, s.nk, s.h, s.d}).to(dtype).transpose(1, 2);
  auto v = torch::randn({s.b, s.nk, 3, s.h, s.d}).to(dtype).select(2, 1).transpose(1, 2);
  return {q, k, v};
}

torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, double scale) {
  auto qd = q.to(torch::kFloat64), kd = k.to(torch::kFloat64), vd = v.to(torch::kFloat64);
  auto p = torch::softmax(torch::matmul(qd, kd.transpose(-1, -2)) * scale, -1);
  auto o = torch::matmul(p, vd);  // [B, H, Nq, D]
  return o.transpose(1, 2).reshape({q.size(0), q.size(2), -1});
}

// Odd token counts, fewer queries than a block, several blocks, cross-attention, heads of 16 to
// 128 (two column chunks), a DINOv3-sized head.
const AttnShape kShapes[] = {{2, 3, 37, 37, 32},   {1, 2, 130, 130, 128}, {2, 1, 5, 67, 16},
                             {1, 2, 201, 201, 64}, {3, 2, 64, 1, 48},     {1, 1, 65, 17, 80}};

}  // namespace

TEST(CpuKernels, FusedAttentionMatchesReference) {
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const auto& s : kShapes) {
      auto in = attention_inputs(s, dtype);
      if (!models::fused_attention_supports(in[0], in[1], in[2]))
        GTEST_SKIP() << "no AVX-512 (or AVX512-BF16) kernel on this CPU";
      for (const double scale : {1.0, 0.125}) {
        SCOPED_TRACE(::testing::Message()
                     << c10::toString(dtype) << " B" << s.b << " H" << s.h << " Nq" << s.nq << " Nk"
                     << s.nk << " D" << s.d << " scale " << scale);
        auto out = models::fused_attention(in[0], in[1], in[2], scale);
        EXPECT_EQ(out.scalar_type(), dtype);
        // fp32: float32 accumulation; bf16: probabilities and output rounded to bf16.
        const double tol = dtype == torch::kFloat32 ? 2e-6 : 1e-2;
        EXPECT_LE(rel_error(out, reference_attention(in[0], in[1], in[2], scale)), tol);
      }
    }
  }
}

TEST(CpuKernels, FusedAttentionIndependentOfThreadCount) {
  const AttnShape s{2, 3, 150, 150, 64};
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    auto in = attention_inputs(s, dtype);
    if (!models::fused_attention_supports(in[0], in[1], in[2])) GTEST_SKIP() << "no AVX-512";
    torch::Tensor one, two;
    {
      vidfuse::test::ThreadCountScope threads(1);
      one = models::fused_attention(in[0], in[1], in[2], 0.125);
    }
    {
      vidfuse::test::ThreadCountScope threads(2);
      two = models::fused_attention(in[0], in[1], in[2], 0.125);
    }
    EXPECT_TRUE(torch::equal(one, two)) << c10::toString(dtype);
  }
}

// attention() with the fused kernel forced: the kernel for inference, the per-head path (with its
// backward) when a graph is recorded, and unsupported layouts (a head width that is not a multiple
// of 16) on the per-head path too.
TEST(CpuKernels, ForcedFusedAttentionFallsBackWhereItCannotRun) {
  vidfuse::test::AttentionKernelScope use(models::AttentionKernel::Fused);
  EXPECT_EQ(models::attention_kernel_from_name("fused"), models::AttentionKernel::Fused);
  const AttnShape s{1, 2, 20, 20, 16};
  auto in = attention_inputs(s, torch::kFloat32);
  const auto ref = reference_attention(in[0], in[1], in[2], 0.25);
  {
    torch::NoGradGuard no_grad;
    EXPECT_LE(rel_error(models::attention(in[0], in[1], in[2], 0.25), ref), 2e-6);
  }
  auto q = in[0].clone().requires_grad_(true);
  auto out = models::attention(q, in[1], in[2], 0.25);
  ASSERT_TRUE(out.requires_grad());
  out.sum().backward();
  EXPECT_TRUE(q.grad().defined());
  EXPECT_LE(rel_error(out.detach(), ref), 2e-6);
  auto odd = attention_inputs({1, 2, 9, 9, 12}, torch::kFloat32);
  EXPECT_FALSE(models::fused_attention_supports(odd[0], odd[1], odd[2]));
  torch::NoGradGuard no_grad;
  EXPECT_LE(rel_error(models::attention(odd[0], odd[1], odd[2], 0.5),
                      reference_attention(odd[0], odd[1], odd[2], 0.5)),
            2e-6);
}

// RoPE applied by the kernel as it reads q and k from the q|k|v rows: against the formula
// x·cos + rotate_half(x)·sin on the patch tokens (the prefix tokens unrotated), then attention, in
// float64. Odd grids, one and five prefix tokens.
TEST(CpuKernels, FusedRopeAttentionMatchesReference) {
  struct Case {
    int64_t b, h, gh, gw, prefix, d;
  };
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const Case c :
         {Case{2, 3, 5, 7, 5, 32}, Case{1, 2, 9, 9, 1, 64}, Case{1, 1, 3, 2, 5, 16}}) {
      const int64_t n = c.prefix + c.gh * c.gw;
      torch::manual_seed(n);
      auto qkv = torch::randn({c.b * n, 3 * c.h * c.d}).to(dtype);
      auto [cos, sin] = models::dinov3_rope_tables(c.gh, c.gw, c.d, 100.0, torch::TensorOptions());
      auto parts = qkv.view({c.b, n, 3, c.h, c.d}).to(torch::kFloat64);
      auto rope = [&](const torch::Tensor& x) {  // [B, H, N, D]
        auto p = x.narrow(2, c.prefix, n - c.prefix);
        const int64_t half = c.d / 2;
        auto rot = torch::cat({-p.narrow(-1, half, half), p.narrow(-1, 0, half)}, -1);
        auto cd = cos.to(dtype).to(torch::kFloat64), sd = sin.to(dtype).to(torch::kFloat64);
        return torch::cat({x.narrow(2, 0, c.prefix), p * cd + rot * sd}, 2);
      };
      auto q = rope(parts.select(2, 0).transpose(1, 2));
      auto k = rope(parts.select(2, 1).transpose(1, 2));
      auto v = parts.select(2, 2).transpose(1, 2);
      auto probe = qkv.view({c.b, n, 3, c.h, c.d}).select(2, 0).transpose(1, 2);
      if (!models::fused_attention_supports(probe, probe, probe)) GTEST_SKIP() << "no AVX-512";
      SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " grid " << c.gh << "x" << c.gw
                                        << " prefix " << c.prefix << " D " << c.d);
      auto out = models::fused_rope_attention(qkv, c.b, c.h, cos, sin, 0.2);
      EXPECT_LE(rel_error(out, reference_attention(q, k, v, 0.2)),
                dtype == torch::kFloat32 ? 2e-6 : 1e-2);
    }
  }
}

TEST(CpuKernels, RowsLayerNormMatchesTorch) {
  const std::vector<std::vector<int64_t>> shapes = {{1608, 768}, {7, 96}, {3, 5, 100}, {1, 17}};
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const auto& shape : shapes) {
      torch::manual_seed(shape.back());
      const int64_t c = shape.back();
      // An offset mean, as the residual stream has: the statistics must not cancel.
      auto x = (torch::randn(shape) * 3 + 5).to(dtype);
      auto w = torch::randn({c}).to(dtype), b = torch::randn({c}).to(dtype);
      if (!models::rows_layer_norm_supports(x, w, b)) GTEST_SKIP() << "no AVX-512";
      SCOPED_TRACE(::testing::Message() << c10::toString(dtype) << " C " << c);
      auto out = models::rows_layer_norm(x, w, b, 1e-6);
      EXPECT_EQ(out.scalar_type(), dtype);
      EXPECT_EQ(out.sizes(), x.sizes());
      auto ref = torch::layer_norm(x.to(torch::kFloat64), {c}, w.to(torch::kFloat64),
                                   b.to(torch::kFloat64), 1e-6);
      EXPECT_LE(rel_error(out, ref), dtype == torch::kFloat32 ? 1e-6 : 6e-3);
      // And as close to ATen's own kernel in the same dtype as the rounding allows.
      auto aten = torch::layer_norm(x, {c}, w, b, 1e-6);
      EXPECT_LE(rel_error(out, aten), dtype == torch::kFloat32 ? 1e-6 : 6e-3);
    }
  }
  // Not contiguous, or without an affine part: not supported (callers use torch::layer_norm).
  auto x = torch::randn({4, 32}).t();
  EXPECT_FALSE(models::rows_layer_norm_supports(x, torch::ones({4}), torch::zeros({4})));
  EXPECT_FALSE(
      models::rows_layer_norm_supports(torch::randn({4, 32}), torch::Tensor(), torch::Tensor()));
}
