// y = x wᵀ + b for row-major activations, routed to the fastest matrix-multiply kernel LibTorch
// has for the device.
#pragma once
#include <torch/torch.h>

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

// A frozen linear layer on oneDNN's own matmul primitive (core/onednn_matmul.h) with its epilogue
// fused: the activation after the bias, a residual add into the output, or a product with a second
// operand. fp32 and bf16 on the CPU, where onednn_matmul_available says so.
class FusedLinear {
 public:
  FusedLinear() = default;
  // weight [N, K]; bias [N] or undefined.
  FusedLinear(const torch::Tensor& weight, const torch::Tensor& bias,
              onednn::Act act = onednn::Act::None,
              onednn::Epilogue epilogue = onednn::Epilogue::Store);

  // Store: act(x wᵀ + b) as a new [M, N] tensor. Multiply: act(x wᵀ + b) * other.
  torch::Tensor operator()(const torch::Tensor& x, const torch::Tensor& other = {}) const;
  // Accumulate: y += x wᵀ + b in place; y [M, N] with unit column stride.
  void accumulate(const torch::Tensor& x, torch::Tensor& y) const;

  bool defined() const { return mm_.defined(); }

 private:
  torch::Tensor rows_of(const torch::Tensor& x) const;
  onednn::Matmul mm_;
  torch::ScalarType dtype_ = torch::kFloat32;
  onednn::Epilogue epilogue_ = onednn::Epilogue::Store;
};

// Whether FusedLinear can run weights of this dtype on this device (oneDNN linked in, CPU, fp32 or
// bf16).
bool onednn_matmul_available(torch::ScalarType dtype, torch::Device device);

}  // namespace vidfuse
