// Scaled dot-product attention shared by the models.
//
// Why not torch::matmul on [B, H, N, D]: ATen runs a batched product as one BLAS call per (batch,
// head), each multithreaded on its own. For ViT-sized heads (197 x 197 x 64) the threads spend
// more time waking and synchronising than multiplying: on a 2-core VM we measured 1 to 80 GFLOP/s
// for the same shape from call to call, and attention took more time than all the linear layers.
// Here the (batch, head) pairs are split across threads instead, and each runs its whole head
// (scores, softmax, weighted sum) single-threaded while it is hot in cache.
//
// LibTorch 2.x has at::scaled_dot_product_attention: flash / memory-efficient kernels on CUDA and a
// fused flash kernel on the CPU, each with a backward. `attention()` uses it except where the
// per-head path was measured faster (`vidfuse bench attention`). For inference on CPUs with
// AVX-512 there is a third, `fused` (models/cpu_kernels.h: scores, softmax and the product with v
// per block of query rows in one parallel region), chosen where it measured fastest
// (`vidfuse bench dinov3 --parts`). VIDFUSE_ATTENTION=sdpa|per-head|fused or
// set_attention_kernel() forces one (the parity tests run each); `fused` where it cannot run (a
// graph to record, another device, dtype or layout) runs the per-head path.
#pragma once
#include <torch/torch.h>

#include <string>

namespace vidfuse::models {

// q [B, H, Nq, D], k and v [B, H, Nk, D] (any strides) -> [B, Nq, H * D]:
// softmax(q kᵀ · scale) v per (batch, head). The softmax is computed in float32 whatever the
// input dtype, as the reference implementations do. Differentiable: when autograd records it, the
// backward pass runs head by head too (SDPA has its own).
enum class AttentionKernel { Auto, Sdpa, PerHead, Fused };
// "auto", "sdpa", "per-head" or "fused"; anything else is a vidfuse::Error.
AttentionKernel attention_kernel_from_name(const std::string& name);
// Process-wide; the default comes from VIDFUSE_ATTENTION (else Auto).
void set_attention_kernel(AttentionKernel kernel);
AttentionKernel attention_kernel();

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        double scale);

// Whether attention(q, k, v, ...) would run the fused CPU kernel (the setting, the CPU, no graph to
// record, a layout it takes): DINOv3 then hands it RoPE too (fused_rope_attention).
bool attention_uses_fused(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v);

}  // namespace vidfuse::models
