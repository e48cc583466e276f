// y = x wᵀ + b for row-major activations, routed to the fastest matrix-multiply kernel LibTorch
// has for the device.
#pragma once
#include <torch/torch.h>

#include "vidfuse/core/cpu_gemm.h"
#include "vidfuse/core/onednn_matmul.h"

namespace vidfuse {

// A frozen linear layer, packed once for inference, on the faster of two CPU kernels for this
// machine (measured; see onednn_linear_available): oneDNN's, reached as a 1x1 convolution over
// channels-last activations (the [M, K] rows are the pixels of a [1, K, M, 1] channels-last image,
// so no data moves on the way in or out), or addmm (MKL's GEMM on Intel CPUs). Elsewhere (CUDA,
// other dtypes, LibTorch without oneDNN) it is a plain addmm.
class PackedLinear {
 public:
  PackedLinear() = default;
  // weight [N, K]; bias [N] or undefined.
  PackedLinear(const torch::Tensor& weight, const torch::Tensor& bias);

  // x [M, K] -> [M, N], contiguous.
  torch::Tensor operator()(const torch::Tensor& x) const;

  bool defined() const { return weight_.defined(); }
  bool uses_onednn() const { return onednn_; }

 private:
  torch::Tensor weight_;  // [N, K], or [N, K, 1, 1] channels-last for oneDNN
  torch::Tensor bias_;
  bool onednn_ = false;
};

// Whether PackedLinear takes the oneDNN path for weights of this dtype on this device.
bool onednn_linear_available(torch::ScalarType dtype, torch::Device device);

// y = x wᵀ + b for x [..., K], w [N, K], with nothing recorded for autograd: PackedLinear's route
// without the packing (a 1x1 channels-last convolution where onednn_linear_available says so, else
// torch::linear). For layers that train but also run inference, such as the fusion module's.
torch::Tensor linear_no_grad(const torch::Tensor& x, const torch::Tensor& weight,
                             const torch::Tensor& bias);

// The kernel behind a FusedLinear: oneDNN's matmul primitive (core/onednn_matmul.h) or vidfuse's
// own GEMM (core/cpu_gemm.h). Both fuse the same epilogues.
enum class GemmKernel { Onednn, Vidfuse };
const char* gemm_kernel_name(GemmKernel kernel);

// Whether `kernel` can run weights of this dtype on this device: oneDNN where libdnnl is linked in
// and has a brgemm kernel for the dtype on this CPU; vidfuse's where the CPU has AVX-512 (fp32) or
// AVX512-BF16 (bf16). CPU only, fp32 and bf16 only.
bool gemm_kernel_available(GemmKernel kernel, torch::ScalarType dtype, torch::Device device);
// Why it cannot: "oneDNN's matmul is not available for BFloat16 on cpu (built without
// libdnnl-dev)", for errors that name who asked.
std::string gemm_kernel_unavailable(GemmKernel kernel, torch::ScalarType dtype,
                                    torch::Device device);
bool onednn_matmul_available(torch::ScalarType dtype, torch::Device device);

// A frozen linear layer with its epilogue fused: the activation after the bias, a residual add
// into the output, or a product with a second operand, applied while the output tile is in
// registers; the weights packed once for `kernel`.
class FusedLinear {
 public:
  FusedLinear() = default;
  // weight [N, K]; bias [N] or undefined. Throws vidfuse::Error where `kernel` is not available.
  FusedLinear(const torch::Tensor& weight, const torch::Tensor& bias,
              onednn::Act act = onednn::Act::None,
              onednn::Epilogue epilogue = onednn::Epilogue::Store,
              GemmKernel kernel = GemmKernel::Onednn);

  // Store: act(x wᵀ + b) as a new [M, N] tensor. Multiply: act(x wᵀ + b) * other.
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& other = {}) const;
  // Accumulate: y += x wᵀ + b in place; y [M, N] with unit column stride.
  void accumulate(const torch::Tensor& x, torch::Tensor& y) const;

  bool defined() const { return n_ > 0; }
  GemmKernel kernel() const { return kernel_; }

 private:
  torch::Tensor rows_of(const torch::Tensor& x) const;
  // y [M, N] dense; `other` as operator() takes it.
  void run(const torch::Tensor& x, torch::Tensor& y, const torch::Tensor& other) const;
  onednn::Matmul mm_;
  cpu_gemm::Gemm own_;
  GemmKernel kernel_ = GemmKernel::Onednn;
  int64_t n_ = 0, k_ = 0;
  torch::ScalarType dtype_ = torch::kFloat32;
  onednn::Epilogue epilogue_ = onednn::Epilogue::Store;
};

}  // namespace vidfuse
