#include "vidfuse/core/linear.h"

#include <ATen/Context.h>

#include <cstdlib>
#include <string>

#include "vidfuse/core/runtime.h"

namespace vidfuse {

bool onednn_linear_available(torch::ScalarType dtype, torch::Device device) {
  // Measured, LibTorch 2.15 wheel: on Intel, MKL's addmm is the faster one (2048²: 200-220 vs
  // 140-170 GFLOP/s fp32, 566 vs 387 bf16 on Sapphire Rapids); on AMD, where MKL does not take its
  // best kernels, oneDNN's is (DINOv3 ViT-B/16 on Zen 4: fp32 5.27 vs 4.78 img/s, bf16 9.56 vs
  // 8.73). oneDNN also wins over OpenBLAS (LibTorch builds without MKL).
  if (const char* forced = std::getenv("VIDFUSE_LINEAR"); forced && *forced)
    return std::string(forced) == "onednn" && device.is_cpu() && at::hasMKLDNN();
  return device.is_cpu() && (dtype == torch::kFloat32 || dtype == torch::kBFloat16) &&
         at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() &&
         !(at::hasMKL() && cpu_is_intel());
}

PackedLinear::PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias)
    : bias_(bias), onednn_(onednn_linear_available(weight.scalar_type(), weight.device())) {
  TORCH_CHECK(weight.dim() == 2, "PackedLinear expects a [N, K] weight, got ", weight.sizes());
  weight_ = onednn_ ? weight.view({weight.size(0), weight.size(1), 1, 1})
                          .contiguous(at::MemoryFormat::ChannelsLast)
                    : weight.contiguous();
}

torch::Tensor PackedLinear::operator()(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == weight_.size(1), "PackedLinear: input ", x.sizes(),
              " does not match weight ", weight_.sizes());
  if (!onednn_)
    return bias_.defined() ? torch::addmm(bias_, x, weight_.t()) : torch::mm(x, weight_.t());
  const int64_t m = x.size(0), k = x.size(1);
  // [M, K] row-major is [1, K, M, 1] in channels-last; the output comes back the same way.
  const torch::Tensor image = x.contiguous().view({1, m, 1, k}).permute({0, 3, 1, 2});
  return at::conv2d(image, weight_, bias_).permute({0, 2, 3, 1}).reshape({m, -1});
}

}  // namespace vidfuse
