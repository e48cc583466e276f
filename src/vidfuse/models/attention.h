// Scaled dot-product attention shared by the models.
//
// Why not torch::matmul on [B, H, N, D]: ATen runs a batched product as one BLAS call per (batch,
// head), each multithreaded on its own. For ViT-sized heads (197 x 197 x 64) the threads spend
// more time waking and synchronising than multiplying: on a 2-core VM we measured 1 to 80 GFLOP/s
// for the same shape from call to call, and attention took more time than all the linear layers.
// Here the (batch, head) pairs are split across threads instead, and each runs its whole head
// (scores, softmax, weighted sum) single-threaded while it is hot in cache.
#pragma once
#include <torch/torch.h>

namespace vidfuse::models {

// q [B, H, Nq, D], k and v [B, H, Nk, D] (any strides) -> [B, Nq, H * D]:
// softmax(q kᵀ · scale) v per (batch, head). The softmax is computed in float32 whatever the
// input dtype, as the reference implementations do. Differentiable: when autograd records it, the
// backward pass runs head by head too. On GPUs the plain batched formulation is used.
torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        double scale);

}  // namespace vidfuse::models
