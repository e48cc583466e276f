#include <gtest/gtest.h>
#include <torch/torch.h>

#include "test_util.h"
#include "vidfuse/core/linear.h"

namespace {

using vidfuse::PackedLinear;
using vidfuse::test::rel_error;

void expect_matches_addmm(torch::ScalarType dtype, int64_t m, bool bias, double tol) {
  vidfuse::test::ThreadCountScope threads(2);
  torch::manual_seed(0);
  torch::InferenceMode guard;
  const auto w = (torch::randn({48, 40}) / 6).to(dtype);
  const auto b = bias ? torch::randn({48}).to(dtype) : torch::Tensor();
  const auto x = torch::randn({m, 40}).to(dtype);
  const PackedLinear linear(w, b);
  EXPECT_EQ(linear.uses_onednn(), vidfuse::onednn_linear_available(dtype, torch::kCPU));
  const auto y = linear(x);
  ASSERT_EQ(y.sizes(), (std::vector<int64_t>{m, 48}));
  EXPECT_TRUE(y.is_contiguous());
  const auto xd = x.to(torch::kFloat64), wd = w.to(torch::kFloat64);
  const auto ref = bias ? torch::addmm(b.to(torch::kFloat64), xd, wd.t()) : torch::mm(xd, wd.t());
  EXPECT_LE(rel_error(y, ref), tol) << "m=" << m << " bias=" << bias;
}

TEST(PackedLinear, Fp32MatchesAddmm) {
  for (int64_t m : {1, 7, 300})
    for (bool bias : {true, false}) expect_matches_addmm(torch::kFloat32, m, bias, 1e-6);
}

TEST(PackedLinear, Bf16MatchesAddmm) {
  for (int64_t m : {1, 300}) expect_matches_addmm(torch::kBFloat16, m, true, 1e-2);
}

// Both routes, whichever this CPU's default is (Intel with MKL: addmm; elsewhere oneDNN).
TEST(PackedLinear, BothRoutesMatchAddmm) {
  for (const char* route : {"onednn", "addmm"}) {
    vidfuse::test::EnvScope forced("VIDFUSE_LINEAR", route);
    EXPECT_EQ(vidfuse::onednn_linear_available(torch::kFloat32, torch::kCPU),
              std::string(route) == "onednn" && at::hasMKLDNN());
    for (bool bias : {true, false}) expect_matches_addmm(torch::kFloat32, 300, bias, 1e-6);
    expect_matches_addmm(torch::kBFloat16, 300, true, 1e-2);
  }
}

// The unpacked route the fusion module takes at inference: any leading dims, both kernels, and a
// refusal when autograd would have to record it.
TEST(PackedLinear, NoGradLinearMatchesTorchLinear) {
  torch::manual_seed(0);
  const auto w = torch::randn({24, 40}) / 6, b = torch::randn({24});
  const auto x = torch::randn({2, 5, 40});
  const auto ref =
      torch::linear(x.to(torch::kFloat64), w.to(torch::kFloat64), b.to(torch::kFloat64));
  for (const char* route : {"onednn", "addmm"}) {
    vidfuse::test::EnvScope forced("VIDFUSE_LINEAR", route);
    torch::NoGradGuard no_grad;
    const auto y = vidfuse::linear_no_grad(x, w, b);
    EXPECT_EQ(y.sizes(), (std::vector<int64_t>{2, 5, 24})) << route;
    EXPECT_LE(rel_error(y, ref), 1e-6) << route;
  }
  const auto trained = w.clone().requires_grad_();
  EXPECT_THROW(vidfuse::linear_no_grad(x, trained, b), c10::Error);
}

TEST(PackedLinear, StridedInputAndDoubleFallBack) {
  torch::InferenceMode guard;
  const auto w = torch::randn({8, 6}, torch::kFloat64);
  const PackedLinear linear(w, torch::Tensor());
  EXPECT_FALSE(linear.uses_onednn());                        // no oneDNN kernel for float64
  const auto x = torch::randn({6, 5}, torch::kFloat64).t();  // [5, 6], not contiguous
  EXPECT_LE(rel_error(linear(x), torch::mm(x, w.t())), 1e-12);
  const PackedLinear f32(w.to(torch::kFloat32), torch::Tensor());
  EXPECT_LE(rel_error(f32(x.to(torch::kFloat32)), torch::mm(x, w.t())), 1e-6);
}

TEST(PackedLinear, RejectsMismatchedInput) {
  const PackedLinear linear(torch::randn({8, 6}), torch::Tensor());
  EXPECT_THROW_WITH(linear(torch::randn({3, 5})), "PackedLinear", "[3, 5]", "[8, 6");
}

// ---------------------------------------------------------------- FusedLinear (oneDNN's own
// matmul)

using vidfuse::FusedLinear;
namespace onednn = vidfuse::onednn;

torch::Tensor reference_act(const torch::Tensor& y, onednn::Act act) {
  switch (act) {
    case onednn::Act::None:
      return y;
    case onednn::Act::GeluErf:
      return torch::gelu(y);
    case onednn::Act::GeluTanh:
      return torch::gelu(y, "tanh");
    case onednn::Act::Silu:
      return torch::silu(y);
    case onednn::Act::Relu:
      return torch::relu(y);
  }
  return y;
}

using vidfuse::GemmKernel;

// The GEMM kernels this machine can run for `dtype`.
std::vector<GemmKernel> kernels_for(torch::ScalarType dtype) {
  std::vector<GemmKernel> out;
  for (GemmKernel k : {GemmKernel::Onednn, GemmKernel::Vidfuse})
    if (vidfuse::gemm_kernel_available(k, dtype, torch::kCPU)) out.push_back(k);
  return out;
}

// Every epilogue against float64 torch: rows of 1, 7 and 301, inputs and outputs that are column
// slices of wider rows (taken through dense copies: oneDNN's kernel for them, its own sgemm, cannot
// run inside a LibTorch process; see onednn_matmul.cpp), the bias given or not; 48 output columns
// (vidfuse's kernel: a block and a half).
void expect_fused_matches(torch::ScalarType dtype, double tol, GemmKernel kernel) {
  SCOPED_TRACE(vidfuse::gemm_kernel_name(kernel));
  vidfuse::test::ThreadCountScope threads(2);
  torch::manual_seed(0);
  torch::InferenceMode guard;
  const auto d = torch::kFloat64;
  const auto w = (torch::randn({48, 40}) / 6).to(dtype);
  const auto b = torch::randn({48}).to(dtype);
  for (int64_t m : {1, 7, 301}) {
    const auto wide = torch::randn({m, 56}).to(dtype);
    const auto x = wide.narrow(1, 8, 40);
    const auto lin = torch::linear(x.to(d), w.to(d), b.to(d));
    for (auto act : {onednn::Act::None, onednn::Act::GeluErf, onednn::Act::GeluTanh,
                     onednn::Act::Silu, onednn::Act::Relu}) {
      const FusedLinear store(w, b, act, onednn::Epilogue::Store, kernel);
      EXPECT_LE(rel_error(store(x), reference_act(lin, act)), tol)
          << "store m=" << m << " act=" << static_cast<int>(act);
      const auto other = torch::randn({m, 48}).to(dtype);
      const FusedLinear times(w, b, act, onednn::Epilogue::Multiply, kernel);
      EXPECT_LE(rel_error(times(x, other), reference_act(lin, act) * other.to(d)), tol)
          << "multiply m=" << m;
    }
    // y += x wᵀ + b into a column slice of a wider buffer; the columns beside it stay as they were.
    const auto buffer = torch::randn({m, 64}).to(dtype);
    const auto before = buffer.clone();
    torch::Tensor y = buffer.narrow(1, 16, 48);
    const FusedLinear acc(w, b, onednn::Act::None, onednn::Epilogue::Accumulate, kernel);
    acc.accumulate(x, y);
    EXPECT_LE(rel_error(y, before.narrow(1, 16, 48).to(d) + lin), tol) << "accumulate m=" << m;
    EXPECT_TRUE(torch::equal(buffer.narrow(1, 0, 16), before.narrow(1, 0, 16)));
    const FusedLinear no_bias(w, torch::Tensor(), onednn::Act::None, onednn::Epilogue::Store,
                              kernel);
    EXPECT_LE(rel_error(no_bias(x), torch::mm(x.to(d), w.to(d).t())), tol) << "no bias m=" << m;
  }
}

TEST(FusedLinear, Fp32EpiloguesMatchTorch) {
  const auto kernels = kernels_for(torch::kFloat32);
  if (kernels.empty()) GTEST_SKIP() << "neither oneDNN nor AVX-512";
  for (GemmKernel k : kernels) expect_fused_matches(torch::kFloat32, 1e-5, k);
}

TEST(FusedLinear, Bf16EpiloguesMatchTorch) {
  const auto kernels = kernels_for(torch::kBFloat16);
  if (kernels.empty()) GTEST_SKIP() << "neither oneDNN nor AVX512-BF16";
  for (GemmKernel k : kernels) expect_fused_matches(torch::kBFloat16, 1e-2, k);
}

// vidfuse's GEMM over several tasks of rows and weight blocks: 530 rows (not a multiple of the
// 12-row tile), 100 columns (three blocks of 32 and a tail of 4), GELU, the product and the
// residual add. K = 1001 is odd (bf16 multiplies pairs of K: the last element goes alone); K = 1024
// puts fp32 rows 4 KB apart, which the kernel copies to a panel first.
TEST(FusedLinear, VidfuseGemmOverTasksTailsPanelsAndOddK) {
  vidfuse::test::ThreadCountScope threads(2);
  torch::manual_seed(0);
  torch::InferenceMode guard;
  const auto d = torch::kFloat64;
  for (auto [dtype, tol] : {std::pair{torch::kFloat32, 1e-5}, std::pair{torch::kBFloat16, 1e-2}}) {
    if (!vidfuse::gemm_kernel_available(GemmKernel::Vidfuse, dtype, torch::kCPU)) continue;
    for (int64_t k : {1001, 1024}) {
      SCOPED_TRACE("K=" + std::to_string(k) + " " + c10::toString(dtype));
      const auto w = (torch::randn({100, k}) / 30).to(dtype);
      const auto b = torch::randn({100}).to(dtype);
      const auto x = torch::randn({530, k}).to(dtype);
      const auto lin = torch::linear(x.to(d), w.to(d), b.to(d));
      const FusedLinear gelu(w, b, onednn::Act::GeluErf, onednn::Epilogue::Store,
                             GemmKernel::Vidfuse);
      EXPECT_LE(rel_error(gelu(x), torch::gelu(lin)), tol);
      const auto other = torch::randn({530, 100}).to(dtype);
      const FusedLinear times(w, b, onednn::Act::Silu, onednn::Epilogue::Multiply,
                              GemmKernel::Vidfuse);
      EXPECT_LE(rel_error(times(x, other), torch::silu(lin) * other.to(d)), tol);
      for (auto act : {onednn::Act::None, onednn::Act::Relu}) {
        const FusedLinear acc(w, b, act, onednn::Epilogue::Accumulate, GemmKernel::Vidfuse);
        torch::Tensor y = torch::randn({530, 100}).to(dtype);
        const auto before = y.to(d);
        acc.accumulate(x, y);
        EXPECT_LE(rel_error(y, before + reference_act(lin, act)), tol);
      }
    }
  }
}

// oneDNN's primitive is cached per thread count: one layer on 1 then 2 threads gives the same rows.
// vidfuse's kernel sums each output over K in one order whatever the threads: bit for bit equal.
TEST(FusedLinear, ThreadCountsAgree) {
  const auto kernels = kernels_for(torch::kFloat32);
  if (kernels.empty()) GTEST_SKIP() << "neither oneDNN nor AVX-512";
  torch::manual_seed(0);
  torch::InferenceMode guard;
  for (GemmKernel k : kernels) {
    const FusedLinear lin(torch::randn({64, 32}), torch::randn({64}), onednn::Act::GeluErf,
                          onednn::Epilogue::Store, k);
    const auto x = torch::randn({100, 32});
    torch::Tensor one, two;
    {
      vidfuse::test::ThreadCountScope threads(1);
      one = lin(x);
    }
    {
      vidfuse::test::ThreadCountScope threads(2);
      two = lin(x);
    }
    if (k == GemmKernel::Vidfuse)
      EXPECT_TRUE(torch::equal(one, two));
    else
      EXPECT_LE(rel_error(one, two), 1e-6);
  }
}

TEST(FusedLinear, RejectsMismatchesWithReasons) {
  if (!vidfuse::onednn_matmul_available(torch::kFloat32, torch::kCPU)) {
    EXPECT_THROW_WITH(FusedLinear(torch::randn({8, 6}), torch::Tensor()), "FusedLinear",
                      "not available");
    return;
  }
  const FusedLinear lin(torch::randn({8, 6}), torch::Tensor());
  EXPECT_THROW_WITH(lin(torch::randn({3, 5})), "FusedLinear", "[3, 5]", "[8, 6]");
  EXPECT_THROW_WITH(lin(torch::randn({3, 6}, torch::kFloat64)), "FusedLinear", "Double");
  torch::Tensor y = torch::zeros({3, 8});
  EXPECT_THROW_WITH(lin.accumulate(torch::randn({3, 6}), y), "accumulate()");
  EXPECT_THROW_WITH(FusedLinear(torch::randn({8, 6}, torch::kFloat64), torch::Tensor()),
                    "not available", "Double");
  const FusedLinear times(torch::randn({8, 6}), torch::Tensor(), onednn::Act::None,
                          onednn::Epilogue::Multiply);
  EXPECT_THROW_WITH(times(torch::randn({3, 6})), "other operand");
}

}  // namespace
