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

}  // namespace
