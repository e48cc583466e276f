// The AVX-512 inference kernels (models/cpu_kernels.h) against ATen's arithmetic in float64.

#include <cmath>
#include <cstring>
#include <iostream>
#include <limits>
#include <random>

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
// 128 (two column chunks), a DINOv3-sized head; between them every tail of the fp32 kernel's row
// groups of 12 and its register blocks (4 and 6 rows, 1 to 4 vectors of keys or of v).
const AttnShape kShapes[] = {{2, 3, 37, 37, 32},   {1, 2, 130, 130, 128}, {2, 1, 5, 67, 16},
                             {1, 2, 201, 201, 64}, {3, 2, 64, 1, 48},     {1, 1, 65, 17, 80},
                             {1, 2, 75, 75, 32}};

}  // namespace

TEST(CpuKernels, FusedAttentionMatchesReference) {
  for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
    for (const auto& s : kShapes) {
      auto in = attention_inputs(s, dtype);
      if (!models::fused_attention_supports(in[0], in[1], in[2]))
        GTEST_SKIP() << "no AVX-512 (or AVX512-BF16) kernel on this CPU";
      // A negative scale too: the fp32 kernel takes the row maxima from its tiles only for > 0.
      for (const double scale : {1.0, 0.125, -0.25}) {
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

namespace {

// Values to rotate: random bit patterns (every class: NaNs, infinities, subnormals, zeros) or
// random normals (where bf16's products are exact in float and the sums' rounding ties are
// common).
template <typename T>
std::vector<T> rope_values(size_t count, bool bit_patterns, std::mt19937& rng) {
  std::vector<T> v(count);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (auto& x : v) {
    if (bit_patterns) {
      const uint32_t bits = rng();
      if constexpr (sizeof(T) == 2) {
        const uint16_t half_bits = static_cast<uint16_t>(bits);
        std::memcpy(&x, &half_bits, 2);
      } else {
        std::memcpy(&x, &bits, 4);
      }
    } else {
      x = static_cast<T>(normal(rng));
    }
  }
  return v;
}

template <typename T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// rope_rotate_rows (AVX-512 where the CPU has it) against rope_rotate_row, the scalar reference,
// bit for bit: every half width from 1 to 70 (tails of every length, one to five vectors), 1 to
// 12 rows at strides with gaps that must stay untouched. fp32 NaNs need only be NaN on both
// sides: IEEE leaves the payload of a sum of two NaNs to the implementation, and the compiler may
// order the scalar code's commutative operands either way. bf16 NaNs are all 0x7FC0, so they are
// compared bit for bit too.
template <typename T>
void check_rope_rotate_bitwise() {
  std::mt19937 rng(12345);
  const T sentinel = static_cast<T>(-777.0f);
  for (int64_t half = 1; half <= 70; ++half) {
    const int64_t dim = 2 * half;
    for (const int64_t rows : {int64_t{1}, int64_t{3}, int64_t{12}}) {
      for (const bool bit_patterns : {false, true}) {
        const int64_t xs = dim + 3, os = dim + 5;
        auto x = rope_values<T>(rows * xs, bit_patterns, rng);
        auto c = rope_values<T>(dim, bit_patterns, rng), s = rope_values<T>(dim, bit_patterns, rng);
        std::vector<T> ref(rows * os, sentinel), out(rows * os, sentinel);
        for (int64_t r = 0; r < rows; ++r)
          models::rope_rotate_row(x.data() + r * xs, c.data(), s.data(), half, ref.data() + r * os);
        models::rope_rotate_rows(x.data(), xs, c.data(), s.data(), half, out.data(), os, rows);
        int64_t mismatches = 0;
        for (size_t i = 0; i < out.size(); ++i) {
          const bool both_nan = std::is_same_v<T, float> &&
                                std::isnan(static_cast<float>(out[i])) &&
                                std::isnan(static_cast<float>(ref[i]));
          if (!same_bits(out[i], ref[i]) && !both_nan) ++mismatches;
        }
        EXPECT_EQ(mismatches, 0) << "half " << half << ", rows " << rows
                                 << (bit_patterns ? ", random bit patterns" : ", normals");
      }
    }
  }
}

}  // namespace

TEST(CpuKernels, RopeRotateRowsMatchesScalarBitForBitFp32) {
  if (!models::rope_rotate_vectorised())
    std::cout << "no AVX-512: rope_rotate_rows runs the scalar loop itself\n";
  check_rope_rotate_bitwise<float>();
}

TEST(CpuKernels, RopeRotateRowsMatchesScalarBitForBitBf16) {
  check_rope_rotate_bitwise<c10::BFloat16>();
  // One pair (half = 1) per case, o = (x1 c1 − x2 s1, x2 c2 + x1 s2), against c10::BFloat16's
  // rounding: ties to even (1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes down to 1;
  // 1 + 3·2^-8 halfway between 1 + 2^-7 and 1 + 2^-6, up to the even 1 + 2^-6), and inf · 0 as
  // 0x7FC0 (x86's default NaN is negative, 0xFFC00000: its upper half would be 0xFFC0).
  struct Case {
    float x1, x2, c1, c2, s1, s2;
    uint16_t o1, o2;
  };
  const float inf = std::numeric_limits<float>::infinity();
  for (const Case& k : {Case{1, 1, 1, 1, -0.00390625f, 0.00390625f, 0x3F80, 0x3F80},
                        Case{1, 1, 1, 1, -0.01171875f, 0.01171875f, 0x3F82, 0x3F82},
                        Case{0, inf, 1, 0, 1, 1, 0xFF80, 0x7FC0}}) {
    using BF = c10::BFloat16;
    const BF x[2] = {BF(k.x1), BF(k.x2)}, c[2] = {BF(k.c1), BF(k.c2)}, s[2] = {BF(k.s1), BF(k.s2)};
    BF o[2], ref[2];
    models::rope_rotate_rows(x, 2, c, s, 1, o, 2, 1);
    models::rope_rotate_row(x, c, s, 1, ref);
    EXPECT_EQ(o[0].x, k.o1) << k.x1 << " " << k.s1;
    EXPECT_EQ(o[1].x, k.o2) << k.x2 << " " << k.s2;
    EXPECT_EQ(ref[0].x, k.o1);
    EXPECT_EQ(ref[1].x, k.o2);
  }
}
