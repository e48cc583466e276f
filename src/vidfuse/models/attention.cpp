#include "vidfuse/models/attention.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>

#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/models/cpu_kernels.h"

namespace vidfuse::models {

namespace {

using torch::Tensor;

// Softmax in at least float32 (double stays double), returned in the input's dtype.
Tensor softmax_acc(const Tensor& scores) {
  const auto t = scores.scalar_type();
  if (t == torch::kFloat32 || t == torch::kFloat64) return torch::softmax(scores, -1);
  return torch::softmax(scores, -1, torch::kFloat32).to(t);
}

// One (batch, head) pair per iteration, split across threads. Inside a parallel region ATen and
// OpenMP BLAS run single-threaded, which is the point. Grad and inference mode are thread-local and
// worker threads start with the defaults, so each worker takes the caller's inference mode (writing
// into the caller's inference tensors needs it) and turns grad mode off. `head_work` (multiply-adds
// per head) sets the grain: a parallel region waits for every thread, and on a loaded machine a
// descheduled thread makes that wait a time slice, so small problems (attentive pooling's few
// queries) stay on one.
template <typename F>
void for_each_head(int64_t batch, int64_t heads, int64_t head_work, const F& body) {
  constexpr int64_t kMinWorkPerThread = int64_t{1} << 22;
  const int64_t grain = std::max<int64_t>(1, kMinWorkPerThread / std::max<int64_t>(1, head_work));
  const bool inference_mode = c10::InferenceMode::is_enabled();
  at::parallel_for(0, batch * heads, grain, [&](int64_t begin, int64_t end) {
    c10::InferenceMode inference(inference_mode);  // before NoGradGuard: it sets grad mode too
    torch::NoGradGuard no_grad;
    for (int64_t i = begin; i < end; ++i) body(i / heads, i % heads);
  });
}

// Forward for all heads; fills `probs` [B, H, Nq, Nk] when it is defined (for backward).
Tensor per_head_forward(const Tensor& q, const Tensor& k, const Tensor& v, double scale,
                        Tensor* probs) {
  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), D = q.size(3);
  auto out = torch::empty({B, Nq, H, D}, q.options());
  for_each_head(B, H, Nq * k.size(2) * D, [&](int64_t b, int64_t h) {
    auto scores = torch::mm(q[b][h], k[b][h].t());
    if (scale != 1.0) scores.mul_(scale);
    auto p = softmax_acc(scores);
    if (probs) (*probs)[b][h].copy_(p);
    out[b].select(1, h).copy_(torch::mm(p, v[b][h]));
  });
  return out.view({B, Nq, H * D});
}

// softmax(q kᵀ · scale) v with a hand-written backward that runs head by head like the forward.
// (Autograd through the batched formulation would record [B, H, ...] matmuls whose backward has
// the same threading problem as their forward.)
class PerHeadAttention : public torch::autograd::Function<PerHeadAttention> {
 public:
  static Tensor forward(torch::autograd::AutogradContext* ctx, const Tensor& q_in,
                        const Tensor& k_in, const Tensor& v_in, double scale) {
    auto q = q_in.detach(), k = k_in.detach(), v = v_in.detach();
    auto probs = torch::empty({q.size(0), q.size(1), q.size(2), k.size(2)}, q.options());
    auto out = per_head_forward(q, k, v, scale, &probs);
    ctx->save_for_backward({q, k, v, probs});
    ctx->saved_data["scale"] = scale;
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    auto q = saved[0].detach(), k = saved[1].detach(), v = saved[2].detach();
    auto probs = saved[3].detach();
    const double scale = ctx->saved_data["scale"].toDouble();
    const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), D = q.size(3);
    auto g = grads[0].detach().reshape({B, Nq, H, D});
    auto dq = torch::empty(q.sizes(), q.options());
    auto dk = torch::empty(k.sizes(), k.options());
    auto dv = torch::empty(v.sizes(), v.options());
    const auto acc = q.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    for_each_head(B, H, 2 * Nq * k.size(2) * D, [&](int64_t b, int64_t h) {
      auto go = g[b].select(1, h);  // [Nq, D]
      auto p = probs[b][h];         // [Nq, Nk]
      dv[b][h].copy_(torch::mm(p.t(), go));
      // d scores = p ⊙ (dp − Σ_j dp ⊙ p), in at least float32.
      auto dp = torch::mm(go, v[b][h].t()).to(acc);
      auto pa = p.to(acc);
      auto ds = (pa * (dp - (dp * pa).sum(-1, true))).mul_(scale).to(q.scalar_type());
      dq[b][h].copy_(torch::mm(ds, k[b][h]));
      dk[b][h].copy_(torch::mm(ds.t(), q[b][h]));
    });
    return {dq, dk, dv, Tensor()};
  }
};

// Measured with `vidfuse bench attention` (LibTorch 2.15, 2 threads). Training (a graph recorded):
// the per-head path with its own backward is faster nearly everywhere (Sapphire Rapids: 6 of 8
// cases; Zen 4: 8 of 8, SDPA's CPU backward in bf16 by 1.4-1.8x). Inference: SDPA's fused kernel
// wins where it runs on AMX tiles (Sapphire Rapids: 1.3-1.7x in bf16, +-8 % in fp32); without AMX
// it loses (Zen 4, AVX512-BF16: per-head 1.3-1.6x faster in bf16 at the DINOv3 and fusion
// cross-attention shapes, 10 % faster to 4 % slower in fp32).
bool per_head_is_faster(bool records_graph) { return records_graph || !cpu_has_amx(); }

// The fused kernel against both, `vidfuse bench dinov3 --parts` (Zen 4, AVX512-BF16, see
// docs/dinov3-cpu-kernels.md): faster than per-head and SDPA in fp32 and bf16 at 201 and 1,025
// tokens. With AMX, SDPA's flash kernel runs on the tiles and has not been compared: it stays.
bool fused_is_faster() { return !cpu_has_amx(); }

AttentionKernel kernel_from_env() {
  const char* v = std::getenv("VIDFUSE_ATTENTION");
  if (!v || !*v) return AttentionKernel::Auto;
  return attention_kernel_from_name(v);
}

std::atomic<AttentionKernel>& kernel_setting() {
  static std::atomic<AttentionKernel> kernel{kernel_from_env()};
  return kernel;
}

}  // namespace

AttentionKernel attention_kernel_from_name(const std::string& name) {
  if (name == "auto") return AttentionKernel::Auto;
  if (name == "sdpa") return AttentionKernel::Sdpa;
  if (name == "per-head") return AttentionKernel::PerHead;
  if (name == "fused") return AttentionKernel::Fused;
  throw Error("attention kernel '" + name + "': auto, sdpa, per-head or fused");
}

void set_attention_kernel(AttentionKernel kernel) { kernel_setting() = kernel; }
AttentionKernel attention_kernel() { return kernel_setting(); }

bool attention_uses_fused(const Tensor& q, const Tensor& k, const Tensor& v) {
  const AttentionKernel kernel = attention_kernel();
  const bool records_graph = torch::GradMode::is_enabled() &&
                             (q.requires_grad() || k.requires_grad() || v.requires_grad());
  return !records_graph &&
         (kernel == AttentionKernel::Fused ||
          (kernel == AttentionKernel::Auto && fused_is_faster())) &&
         fused_attention_supports(q, k, v);
}

Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention expects [B, H, N, D] inputs");
  const AttentionKernel kernel = attention_kernel();
  const bool records_graph = torch::GradMode::is_enabled() &&
                             (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (attention_uses_fused(q, k, v)) return fused_attention(q, k, v, scale);
  const bool per_head =
      kernel == AttentionKernel::PerHead || kernel == AttentionKernel::Fused ||
      (kernel == AttentionKernel::Auto && q.device().is_cpu() && per_head_is_faster(records_graph));
  if (!per_head) {
    // Flash / memory-efficient kernels on CUDA, the fused flash kernel on the CPU; both keep the
    // softmax in float32 for reduced-precision inputs and have their own backward.
    auto out = at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                                /*is_causal=*/false, scale);
    return out.transpose(1, 2).reshape({q.size(0), q.size(2), -1});
  }
  if (records_graph) return PerHeadAttention::apply(q, k, v, scale);
  return per_head_forward(q, k, v, scale, nullptr);
}

}  // namespace vidfuse::models
