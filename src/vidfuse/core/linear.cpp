#include "vidfuse/core/linear.h"

#include <ATen/Context.h>
#include <ATen/record_function.h>

#include <cstdlib>
#include <string>

#include "vidfuse/core/error.h"
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

namespace {

// [M, K] row-major is [1, K, M, 1] in channels-last; the output comes back the same way. `weight`
// is [N, K, 1, 1].
torch::Tensor linear_as_conv(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias) {
  const int64_t m = x.size(0), k = x.size(1);
  const torch::Tensor image = x.contiguous().view({1, m, 1, k}).permute({0, 3, 1, 2});
  return at::conv2d(image, weight, bias).permute({0, 2, 3, 1}).reshape({m, -1});
}

}  // namespace

torch::Tensor linear_no_grad(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias) {
  TORCH_CHECK(!torch::GradMode::is_enabled() || !(x.requires_grad() || weight.requires_grad() ||
                                                  (bias.defined() && bias.requires_grad())),
              "linear_no_grad: a graph is being recorded");
  if (!onednn_linear_available(weight.scalar_type(), weight.device()))
    return torch::linear(x, weight, bias);
  const int64_t n = weight.size(0), k = weight.size(1);
  TORCH_CHECK(x.size(-1) == k, "linear_no_grad: input ", x.sizes(), " does not match weight ",
              weight.sizes());
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = n;
  const torch::Tensor y =
      linear_as_conv(x.reshape({-1, k}), weight.contiguous().view({n, k, 1, 1}), bias);
  return y.view(out_shape);
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
  return linear_as_conv(x, weight_, bias_);
}

bool onednn_matmul_available(torch::ScalarType dtype, torch::Device device) {
  return gemm_kernel_available(GemmKernel::Onednn, dtype, device);
}

const char* gemm_kernel_name(GemmKernel kernel) {
  return kernel == GemmKernel::Vidfuse ? "vidfuse" : "onednn";
}

namespace {

onednn::DType gemm_dtype(torch::ScalarType dtype) {
  return dtype == torch::kBFloat16 ? onednn::DType::BF16 : onednn::DType::F32;
}

}  // namespace

bool gemm_kernel_available(GemmKernel kernel, torch::ScalarType dtype, torch::Device device) {
  if (!device.is_cpu() || (dtype != torch::kFloat32 && dtype != torch::kBFloat16)) return false;
  return kernel == GemmKernel::Vidfuse ? cpu_gemm::supports(gemm_dtype(dtype))
                                       : onednn::available() && onednn::supports(gemm_dtype(dtype));
}

std::string gemm_kernel_unavailable(GemmKernel kernel, torch::ScalarType dtype,
                                    torch::Device device) {
  return std::string(kernel == GemmKernel::Vidfuse ? "vidfuse's GEMM" : "oneDNN's matmul") +
         " is not available for " + c10::toString(dtype) + " on " + device.str() +
         (kernel == GemmKernel::Onednn && !onednn::available() ? " (built without libdnnl-dev)"
                                                               : "");
}

FusedLinear::FusedLinear(const torch::Tensor& weight, const torch::Tensor& bias, onednn::Act act,
                         onednn::Epilogue epilogue, GemmKernel kernel)
    : kernel_(kernel), dtype_(weight.scalar_type()), epilogue_(epilogue) {
  if (!gemm_kernel_available(kernel, dtype_, weight.device()))
    throw Error("FusedLinear: " + gemm_kernel_unavailable(kernel, dtype_, weight.device()));
  TORCH_CHECK(weight.dim() == 2, "FusedLinear expects a [N, K] weight, got ", weight.sizes());
  const torch::Tensor w = weight.contiguous();
  const torch::Tensor b = bias.defined() ? bias.to(dtype_).contiguous() : torch::Tensor();
  TORCH_CHECK(!b.defined() || b.numel() == w.size(0), "FusedLinear: bias ", b.sizes(),
              " does not match weight ", w.sizes());
  n_ = w.size(0);
  k_ = w.size(1);
  const onednn::DType d = gemm_dtype(dtype_);
  const void* bias_data = b.defined() ? b.data_ptr() : nullptr;
  if (kernel == GemmKernel::Vidfuse)
    own_ = cpu_gemm::Gemm(w.data_ptr(), bias_data, n_, k_, d, act, epilogue);
  else
    mm_ = onednn::Matmul(w.data_ptr(), bias_data, n_, k_, d, act, epilogue);
}

torch::Tensor FusedLinear::rows_of(const torch::Tensor& x) const {
  TORCH_CHECK(x.dim() == 2 && x.size(1) == k_ && x.is_cpu() && x.scalar_type() == dtype_,
              "FusedLinear: input ", x.sizes(), " ", x.scalar_type(),
              " does not match the [N, K] = [", n_, ", ", k_, "] ", dtype_, " weight");
  // Dense rows: oneDNN's brgemm kernels (the only ones usable here) do not take a leading
  // dimension.
  return x.contiguous();
}

void FusedLinear::run(const torch::Tensor& x, torch::Tensor& y, const torch::Tensor& other) const {
  if (x.size(0) == 0) return;
  const void* o = other.defined() ? other.data_ptr() : nullptr;
  if (kernel_ == GemmKernel::Vidfuse) {
    // Named in profiles (bench dinov3 --profile): no ATen operator runs inside.
    RECORD_FUNCTION("vidfuse::cpu_gemm", std::vector<c10::IValue>());
    own_.run(x.data_ptr(), x.size(0), k_, y.data_ptr(), n_, o);
  } else {
    RECORD_FUNCTION("vidfuse::onednn_matmul", std::vector<c10::IValue>());
    mm_.run(x.data_ptr(), x.size(0), k_, y.data_ptr(), n_, o, at::get_num_threads());
  }
}

torch::Tensor FusedLinear::operator()(const torch::Tensor& input,
                                      const torch::Tensor& other) const {
  const torch::Tensor x = rows_of(input);
  TORCH_CHECK(epilogue_ != onednn::Epilogue::Accumulate,
              "FusedLinear: an accumulating layer runs through accumulate()");
  torch::Tensor o;
  if (epilogue_ == onednn::Epilogue::Multiply) {
    TORCH_CHECK(other.defined() && other.sizes() == torch::IntArrayRef({x.size(0), n_}) &&
                    other.scalar_type() == dtype_,
                "FusedLinear: the product's other operand must be [", x.size(0), ", ", n_, "] ",
                dtype_);
    o = other.contiguous();
  }
  torch::Tensor y = torch::empty({x.size(0), n_}, x.options());
  run(x, y, o);
  return y;
}

void FusedLinear::accumulate(const torch::Tensor& input, torch::Tensor& y) const {
  const torch::Tensor x = rows_of(input);
  TORCH_CHECK(epilogue_ == onednn::Epilogue::Accumulate,
              "FusedLinear: accumulate() on a layer built to store its output");
  TORCH_CHECK(y.dim() == 2 && y.size(0) == x.size(0) && y.size(1) == n_ &&
                  y.scalar_type() == dtype_ && y.is_cpu(),
              "FusedLinear: accumulator ", y.sizes(), " ", y.scalar_type(),
              " does not match the output [", x.size(0), ", ", n_, "] ", dtype_);
  // In place where y is dense (the residual stream always is), through a dense copy otherwise.
  torch::Tensor target = y.contiguous();
  run(x, target, {});
  if (!target.is_same(y)) y.copy_(target);
}

}  // namespace vidfuse
