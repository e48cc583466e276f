#include "vidfuse/models/attention.h"

#include <ATen/Parallel.h>

namespace vidfuse::models {

namespace {

torch::Tensor softmax_f32(const torch::Tensor& scores) {
  if (scores.scalar_type() == torch::kFloat32) return torch::softmax(scores, -1);
  return torch::softmax(scores, -1, torch::kFloat32).to(scores.scalar_type());
}

torch::Tensor batched_attention(const torch::Tensor& q, const torch::Tensor& k,
                                const torch::Tensor& v, double scale) {
  auto scores = torch::matmul(q, k.transpose(-2, -1));
  auto probs = softmax_f32(scale != 1.0 ? scores * scale : scores);
  auto out = torch::matmul(probs, v);  // [B, H, Nq, D]
  return out.transpose(1, 2).reshape({q.size(0), q.size(2), -1});
}

}  // namespace

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        double scale) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4,
              "attention expects [B, H, N, D] inputs");
  const bool records_graph = torch::GradMode::is_enabled() &&
                             (q.requires_grad() || k.requires_grad() || v.requires_grad());
  if (records_graph || !q.device().is_cpu()) return batched_attention(q, k, v, scale);

  const int64_t B = q.size(0), H = q.size(1), Nq = q.size(2), D = q.size(3);
  auto out = torch::empty({B, Nq, H, D}, q.options());
  at::parallel_for(0, B * H, 1, [&](int64_t begin, int64_t end) {
    // Inside a parallel region ATen and OpenMP BLAS run single-threaded, which is the point.
    for (int64_t i = begin; i < end; ++i) {
      const int64_t b = i / H, h = i % H;
      auto qi = q[b][h], ki = k[b][h], vi = v[b][h];
      auto scores = torch::mm(qi, ki.t());
      if (scale != 1.0) scores.mul_(scale);
      auto probs = softmax_f32(scores);
      out[b].select(1, h).copy_(torch::mm(probs, vi));
    }
  });
  return out.view({B, Nq, H * D});
}

}  // namespace vidfuse::models
