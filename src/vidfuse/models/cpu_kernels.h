// Hand-written AVX-512 kernels for the frozen models' inference passes on the CPU, where LibTorch's
// route costs more than the arithmetic: attention as one pass per (batch, head, block of queries)
// and LayerNorm over rows in one pass. Nothing here records autograd; callers use them only when
// no graph is recorded and fall back to ATen where `*_supports` says no (another ISA, dtype or
// layout). Compiled with function-level target attributes and chosen at run time, so the binary
// still runs on CPUs without AVX-512.
#pragma once
#include <torch/torch.h>

namespace vidfuse::models {

// softmax(q kᵀ · scale) v for q [B, H, Nq, D], k and v [B, H, Nk, D] -> [B, Nq, H * D], as
// attention() in attention.h. Each task takes one block of query rows of one head: the scores of
// the block against every key (kept in float32, in cache), the softmax in place, and the product
// with v, in one parallel region for all heads. fp32: float32 FMAs; bf16: AVX512-BF16 dot
// products with float32 accumulation, the softmax's numerators e^(s − max) rounded to bf16 before
// the product with v (as the reference implementations round the probabilities) and the result
// scaled by 1 / Σ e, summed in float32.
bool fused_attention_supports(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v);
torch::Tensor fused_attention(const torch::Tensor& q, const torch::Tensor& k,
                              const torch::Tensor& v, double scale);

// The same with DINOv3's RoPE applied as the kernel reads q and k, so that no pass of its own
// writes them: qkv is the fused q|k|v projection's output, contiguous [B * N, 3 * H * D]; cos and
// sin [P, D] rotate tokens N − P .. N − 1 (the patches; the first N − P pass unchanged), with
// rope_qkv's arithmetic (models/dinov3.cpp). Requires what fused_attention_supports requires of
// the q, k and v views. -> [B, N, H * D].
torch::Tensor fused_rope_attention(const torch::Tensor& qkv, int64_t batch, int64_t heads,
                                   const torch::Tensor& cos, const torch::Tensor& sin,
                                   double scale);

// RoPE on one row of 2 * half values, x -> o, in float: (x1 cos - x2 sin, x2 cos + x1 sin) with
// x1, x2 the row's halves and c, s its rows of the tables, each product rounded to float before
// the sum (a baseline x86-64 build has no FMA to contract them into). The reference arithmetic:
// rope_rotate_rows below runs it, vectorised where it can, with the same results bit for bit.
template <class T>
inline void rope_rotate_row(const T* x, const T* c, const T* s, int64_t half, T* o) {
  for (int64_t d = 0; d < half; ++d) {
    const float x1 = static_cast<float>(x[d]), x2 = static_cast<float>(x[d + half]);
    o[d] = static_cast<T>(x1 * static_cast<float>(c[d]) - x2 * static_cast<float>(s[d]));
    o[d + half] =
        static_cast<T>(x2 * static_cast<float>(c[d + half]) + x1 * static_cast<float>(s[d + half]));
  }
}

// rope_rotate_row on `rows` rows that share one row of the tables (one token's heads): row r is
// x + r * x_stride -> o + r * o_stride. The one RoPE rotation of rope_qkv's pass
// (models/dinov3.cpp) and fused_rope_attention, whose results must agree bit for bit. AVX-512
// where the CPU has it (separate products and sums, no FMA; bf16 rounded to nearest even, NaN to
// 0x7FC0, as c10::BFloat16), bit for bit rope_rotate_row's results (CpuKernels.RopeRotate*); the
// scalar loop elsewhere.
void rope_rotate_rows(const float* x, int64_t x_stride, const float* c, const float* s,
                      int64_t half, float* o, int64_t o_stride, int64_t rows);
void rope_rotate_rows(const c10::BFloat16* x, int64_t x_stride, const c10::BFloat16* c,
                      const c10::BFloat16* s, int64_t half, c10::BFloat16* o, int64_t o_stride,
                      int64_t rows);
// Whether rope_rotate_rows runs its AVX-512 code on this CPU.
bool rope_rotate_vectorised();

// LayerNorm over the last dimension of a contiguous x (fp32 or bf16), float32 statistics, the
// result in x's dtype: torch::layer_norm's arithmetic in one pass over each row.
bool rows_layer_norm_supports(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias);
torch::Tensor rows_layer_norm(const torch::Tensor& x, const torch::Tensor& weight,
                              const torch::Tensor& bias, double eps);

}  // namespace vidfuse::models
