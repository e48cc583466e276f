#include "vidfuse/core/linear.h"

#include <ATen/Context.h>

namespace vidfuse {

bool onednn_linear_available(torch::ScalarType dtype, torch::Device device) {
  return device.is_cpu() && (dtype == torch::kFloat32 || dtype == torch::kBFloat16) &&
         at::hasMKLDNN() && at::globalContext().userEnabledMkldnn();
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
