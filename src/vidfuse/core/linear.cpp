#include "vidfuse/core/linear.h"

#include <cstdlib>
#include <string>

#include <ATen/Context.h>

namespace vidfuse {

bool onednn_linear_available(torch::ScalarType dtype, torch::Device device) {
  // With MKL's GEMM (the torch wheel) addmm is the faster one: 200-220 vs 140-170 GFLOP/s in fp32
  // and 566 vs 387 in bf16 on 2048² (Xeon Sapphire Rapids, LibTorch 2.15). oneDNN's convolution
  // kernel wins over OpenBLAS (LibTorch builds without MKL).
  if (const char* forced = std::getenv("VIDFUSE_LINEAR"); forced && *forced)
    return std::string(forced) == "onednn" && device.is_cpu() && at::hasMKLDNN();
  return device.is_cpu() && (dtype == torch::kFloat32 || dtype == torch::kBFloat16) &&
         at::hasMKLDNN() && at::globalContext().userEnabledMkldnn() && !at::hasMKL();
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
