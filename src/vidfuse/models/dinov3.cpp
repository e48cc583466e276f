#include "vidfuse/models/dinov3.h"

#include <ATen/Parallel.h>
#include <ATen/record_function.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <regex>

#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/core/shape_text.h"
#include "vidfuse/models/attention.h"
#include "vidfuse/models/cpu_kernels.h"
#include "vidfuse/weights/checkpoint.h"
#include "vidfuse/weights/state_dict.h"

namespace vidfuse::models {

namespace F = torch::nn::functional;

namespace {

torch::Tensor activation(const torch::Tensor& x, const std::string& act) {
  if (act == "gelu") return torch::gelu(x);
  if (act == "silu") return torch::silu(x);
  if (act == "relu") return torch::relu(x);
  return torch::gelu(x, "tanh");  // gelu_pytorch_tanh
}

// In place on a tensor the caller owns (saves an allocation of the widest activation).
void activation_(torch::Tensor& x, const std::string& act) {
  if (act == "gelu")
    at::gelu_(x);
  else if (act == "silu")
    at::silu_(x);
  else if (act == "relu")
    x.relu_();
  else
    at::gelu_(x, "tanh");
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// RoPE on the patch tokens only: the first `prefix` tokens (CLS + registers) pass unchanged.
// x' = x·cos + rotate_half(x)·sin, i.e. per half: x1' = x1·cos1 − x2·sin1, x2' = x2·cos2 + x1·sin2.
// Without a graph to record it is written half by half into one output, with no temporaries: the
// formula's five intermediate tensors and two concatenations cost 3 % of a bf16 forward.
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos,
                         const torch::Tensor& sin) {
  const int64_t patches = cos.size(0);
  const int64_t prefix = x.size(-2) - patches;
  torch::Tensor p = x.narrow(-2, prefix, patches);
  if (torch::GradMode::is_enabled() && x.requires_grad()) {
    torch::Tensor rotated = p * cos + rotate_half(p) * sin;
    return torch::cat({x.narrow(-2, 0, prefix), rotated}, -2);
  }
  const int64_t half = x.size(-1) / 2;
  torch::Tensor out = torch::empty(x.sizes(), x.options());
  out.narrow(-2, 0, prefix).copy_(x.narrow(-2, 0, prefix));
  torch::Tensor o = out.narrow(-2, prefix, patches);
  torch::Tensor o1 = o.narrow(-1, 0, half), o2 = o.narrow(-1, half, half);
  const torch::Tensor p1 = p.narrow(-1, 0, half), p2 = p.narrow(-1, half, half);
  at::mul_out(o1, p1, cos.narrow(-1, 0, half)).addcmul_(p2, sin.narrow(-1, 0, half), -1);
  at::mul_out(o2, p2, cos.narrow(-1, half, half)).addcmul_(p1, sin.narrow(-1, half, half));
  return out;
}

// RoPE on q and k straight from the fused q|k|v GEMM's output, in one pass: qkv [B, N, 3, H, D]
// contiguous -> q, k [B, H, N, D] contiguous, the first `prefix` tokens copied unrotated. The
// strided formula of apply_rope (two products and two fused multiply-adds over [B, H, P, D/2]
// views) took 10-19 % of a forward once the linear layers ran on oneDNN's kernels; here each
// output row is written once, in float, and each head's rows land contiguous for the attention
// products. Per token, the H heads of q (then of k) are one rope_rotate_rows call: they share the
// token's row of the tables, which the AVX-512 code loads once for all of them.
template <typename T>
void rope_rows(const T* qkv, const T* cos, const T* sin, T* q, T* k, int64_t batch, int64_t n,
               int64_t heads, int64_t dim, int64_t prefix, int64_t begin, int64_t end) {
  const int64_t head_stride = n * dim;  // from one head's row to the next in [B, H, N, D]
  for (int64_t row = begin; row < end; ++row) {
    const int64_t b = row / n, t = row % n;
    for (int64_t which = 0; which < 2; ++which) {
      const T* x = qkv + (row * 3 + which) * heads * dim;
      T* o = (which == 0 ? q : k) + (b * heads * n + t) * dim;
      if (t < prefix) {
        for (int64_t h = 0; h < heads; ++h)
          std::memcpy(o + h * head_stride, x + h * dim, dim * sizeof(T));
      } else {
        rope_rotate_rows(x, dim, cos + (t - prefix) * dim, sin + (t - prefix) * dim, dim / 2, o,
                         head_stride, heads);
      }
    }
  }
}

template <typename T>
void rope_qkv_typed(const torch::Tensor& qkv, const torch::Tensor& cos, const torch::Tensor& sin,
                    torch::Tensor& q, torch::Tensor& k, int64_t batch, int64_t n, int64_t heads,
                    int64_t dim, int64_t prefix) {
  const T *in = qkv.data_ptr<T>(), *c = cos.data_ptr<T>(), *s = sin.data_ptr<T>();
  T *qp = q.data_ptr<T>(), *kp = k.data_ptr<T>();
  at::parallel_for(0, batch * n, 16, [&](int64_t begin, int64_t end) {
    rope_rows(in, c, s, qp, kp, batch, n, heads, dim, prefix, begin, end);
  });
}

std::pair<torch::Tensor, torch::Tensor> rope_qkv(const torch::Tensor& qkv, int64_t batch, int64_t n,
                                                 int64_t heads, int64_t dim,
                                                 const torch::Tensor& cos_in,
                                                 const torch::Tensor& sin_in) {
  RECORD_FUNCTION("vidfuse::rope_qkv", std::vector<c10::IValue>());  // named in profiles
  const torch::Tensor cos = cos_in.to(qkv.scalar_type()).contiguous();
  const torch::Tensor sin = sin_in.to(qkv.scalar_type()).contiguous();
  const int64_t prefix = n - cos.size(0);
  torch::Tensor q = torch::empty({batch, heads, n, dim}, qkv.options());
  torch::Tensor k = torch::empty({batch, heads, n, dim}, qkv.options());
  // The oneDNN kernel set, the only caller, runs fp32 and bf16 only.
  if (qkv.scalar_type() == torch::kFloat32)
    rope_qkv_typed<float>(qkv, cos, sin, q, k, batch, n, heads, dim, prefix);
  else if (qkv.scalar_type() == torch::kBFloat16)
    rope_qkv_typed<c10::BFloat16>(qkv, cos, sin, q, k, batch, n, heads, dim, prefix);
  else
    throw Error(std::string("DINOv3 RoPE pass: dtype ") + c10::toString(qkv.scalar_type()) +
                " is not fp32 or bf16");
  return {q, k};
}

// VIDFUSE_LAYERNORM=torch|rows forces LayerNorm's kernel; unset or "auto", rows_layer_norm
// (cpu_kernels.h) runs where it can, since it measured faster than torch::layer_norm on Zen 4 in
// both dtypes (`vidfuse bench dinov3 --parts`). Read on each call, so that the benchmark can
// alternate the two in one process.
bool rows_layer_norm_wanted() {
  const char* v = std::getenv("VIDFUSE_LAYERNORM");
  if (!v || !*v || std::string(v) == "auto" || std::string(v) == "rows") return true;
  if (std::string(v) == "torch") return false;
  throw Error(std::string("VIDFUSE_LAYERNORM='") + v + "': auto, torch or rows");
}

// VIDFUSE_ROPE=pass|attention: where the fused attention kernel runs, RoPE is applied either by
// rope_qkv's pass before it (unset or "pass") or by the kernel as it reads q and k ("attention",
// fused_rope_attention: no pass of its own). Both rotate with rope_rotate_rows (AVX-512) and agree
// bit for bit; the second did not measure faster on Zen 4 at either thread count or dtype
// (`vidfuse bench dinov3 --parts`: 0.3-0.5 % slower, within noise; its strided reads of q and k
// from the q|k|v rows cost what the pass's streaming copy saves), so it is not the default. Read
// on each call, as above.
bool rope_in_attention() {
  const char* v = std::getenv("VIDFUSE_ROPE");
  if (!v || !*v || std::string(v) == "pass") return false;
  if (std::string(v) == "attention") return true;
  throw Error(std::string("VIDFUSE_ROPE='") + v + "': attention or pass");
}

torch::Tensor layer_norm(const torch::Tensor& x, const torch::nn::LayerNorm& ln) {
  const bool records_graph =
      torch::GradMode::is_enabled() && (x.requires_grad() || ln->weight.requires_grad());
  if (!records_graph && rows_layer_norm_wanted() &&
      rows_layer_norm_supports(x, ln->weight, ln->bias))
    return rows_layer_norm(x, ln->weight, ln->bias, ln->options.eps());
  return torch::layer_norm(x, {x.size(-1)}, ln->weight, ln->bias, ln->options.eps());
}

}  // namespace

// ---------------------------------------------------------------- embeddings

DinoV3EmbeddingsImpl::DinoV3EmbeddingsImpl(const DinoV3Config& c) {
  cls_token = register_parameter("cls_token", torch::randn({1, 1, c.hidden_size}) * 0.02);
  mask_token = register_parameter("mask_token", torch::zeros({1, 1, c.hidden_size}));
  register_tokens = register_parameter(
      "register_tokens", torch::randn({1, c.num_register_tokens, c.hidden_size}) * 0.02);
  patch_embeddings = register_module(
      "patch_embeddings",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size)
                            .stride(c.patch_size)));
}

torch::Tensor DinoV3EmbeddingsImpl::forward(const torch::Tensor& pixel_values) {
  const int64_t b = pixel_values.size(0);
  torch::Tensor x = patch_embeddings(pixel_values.to(patch_embeddings->weight.scalar_type()));
  x = x.flatten(2).transpose(1, 2);  // [B, P, C], patches in row-major order
  return torch::cat({cls_token.expand({b, -1, -1}), register_tokens.expand({b, -1, -1}), x}, 1);
}

// ---------------------------------------------------------------- RoPE

std::pair<torch::Tensor, torch::Tensor> dinov3_rope_tables(int64_t h, int64_t w, int64_t head_dim,
                                                           double theta,
                                                           const torch::TensorOptions& options) {
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(options.device());
  // inv_freq[k] = 1 / theta^(4k/D), k < D/4
  torch::Tensor inv_freq = 1.0 / torch::pow(theta, torch::arange(0.0, 1.0, 4.0 / head_dim, f32));
  // Patch centres normalised to [-1, 1], each axis by its own count.
  torch::Tensor ys = torch::arange(0.5, static_cast<double>(h), 1.0, f32) / h;
  torch::Tensor xs = torch::arange(0.5, static_cast<double>(w), 1.0, f32) / w;
  auto grid = torch::meshgrid({ys, xs}, "ij");
  torch::Tensor coords = torch::stack({grid[0].flatten(), grid[1].flatten()}, -1) * 2.0 - 1.0;
  // angles [P, 2, D/4] -> [P, D/2] as [y-freqs | x-freqs] -> tiled to [P, D]
  torch::Tensor angles = (2.0 * M_PI) * coords.unsqueeze(-1) * inv_freq.view({1, 1, -1});
  angles = angles.flatten(1, 2).repeat({1, 2});
  return {angles.cos().to(options.dtype()), angles.sin().to(options.dtype())};
}

// ---------------------------------------------------------------- attention

DinoV3AttentionImpl::DinoV3AttentionImpl(const DinoV3Config& c)
    : num_heads_(c.num_attention_heads), head_dim_(c.head_dim()) {
  const int64_t d = c.hidden_size;
  using torch::nn::LinearOptions;
  q_proj = register_module("q_proj", torch::nn::Linear(LinearOptions(d, d).bias(c.query_bias)));
  k_proj = register_module("k_proj", torch::nn::Linear(LinearOptions(d, d).bias(c.key_bias)));
  v_proj = register_module("v_proj", torch::nn::Linear(LinearOptions(d, d).bias(c.value_bias)));
  o_proj = register_module("o_proj", torch::nn::Linear(LinearOptions(d, d).bias(c.proj_bias)));
}

torch::Tensor DinoV3AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                           const torch::Tensor& sin) {
  const int64_t b = x.size(0), n = x.size(1);
  auto heads = [&](const torch::Tensor& t) {
    return t.view({b, n, num_heads_, head_dim_}).transpose(1, 2);
  };
  torch::Tensor q = apply_rope(heads(q_proj(x)), cos, sin);
  torch::Tensor k = apply_rope(heads(k_proj(x)), cos, sin);
  torch::Tensor v = heads(v_proj(x));
  return o_proj(attention(q, k, v, std::pow(head_dim_, -0.5)));
}

// ---------------------------------------------------------------- MLP, layer scale, layer

DinoV3LayerScaleImpl::DinoV3LayerScaleImpl(int64_t dim, double init) {
  lambda1 = register_parameter("lambda1", torch::full({dim}, init));
}

DinoV3MLPImpl::DinoV3MLPImpl(const DinoV3Config& c) : act_(c.hidden_act) {
  using torch::nn::LinearOptions;
  const int64_t d = c.hidden_size, m = c.intermediate_size;
  if (c.use_gated_mlp)
    gate_proj =
        register_module("gate_proj", torch::nn::Linear(LinearOptions(d, m).bias(c.mlp_bias)));
  up_proj = register_module("up_proj", torch::nn::Linear(LinearOptions(d, m).bias(c.mlp_bias)));
  down_proj = register_module("down_proj", torch::nn::Linear(LinearOptions(m, d).bias(c.mlp_bias)));
}

torch::Tensor DinoV3MLPImpl::forward(const torch::Tensor& x) {
  if (gate_proj) return down_proj(activation(gate_proj(x), act_) * up_proj(x));
  return down_proj(activation(up_proj(x), act_));
}

DinoV3LayerImpl::DinoV3LayerImpl(const DinoV3Config& c) {
  auto ln = [&] {
    return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps));
  };
  norm1 = register_module("norm1", ln());
  attention = register_module("attention", DinoV3Attention(c));
  layer_scale1 =
      register_module("layer_scale1", DinoV3LayerScale(c.hidden_size, c.layerscale_value));
  norm2 = register_module("norm2", ln());
  mlp = register_module("mlp", DinoV3MLP(c));
  layer_scale2 =
      register_module("layer_scale2", DinoV3LayerScale(c.hidden_size, c.layerscale_value));
}

torch::Tensor DinoV3LayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos,
                                       const torch::Tensor& sin) {
  torch::Tensor h = x + layer_scale1(attention(norm1(x), cos, sin));
  return h + layer_scale2(mlp(norm2(h)));
}

// ---------------------------------------------------------------- model

DinoV3ViTImpl::DinoV3ViTImpl(const DinoV3Config& c) : config_(c) {
  c.validate();
  embeddings = register_module("embeddings", DinoV3Embeddings(c));
  layer = register_module("layer", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layer->push_back(DinoV3Layer(c));
  norm = register_module(
      "norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps)));
}

int64_t DinoV3ViTImpl::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : parameters()) n += p.numel();
  return n;
}

DinoV3Kernels dinov3_kernels(torch::ScalarType dtype, torch::Device device) {
  const bool onednn = gemm_kernel_available(GemmKernel::Onednn, dtype, device);
  const bool own = gemm_kernel_available(GemmKernel::Vidfuse, dtype, device);
  if (const char* forced = std::getenv("VIDFUSE_DINOV3_KERNELS"); forced && *forced) {
    const std::string name(forced);
    if (name == "torch") return DinoV3Kernels::Torch;
    if (name != "onednn" && name != "vidfuse")
      throw Error("VIDFUSE_DINOV3_KERNELS='" + name +
                  "' is not a kernel set (torch, onednn or vidfuse)");
    const DinoV3Kernels set = name == "onednn" ? DinoV3Kernels::Onednn : DinoV3Kernels::Vidfuse;
    if (!(name == "onednn" ? onednn : own))
      throw Error("VIDFUSE_DINOV3_KERNELS=" + name + ": " +
                  gemm_kernel_unavailable(dinov3_gemm_kernel(set), dtype, device));
    return set;
  }
  // Measured on AMD Zen 4 (docs/dinov3-cpu-kernels.md has the figures): vidfuse's GEMM is the
  // faster in bf16, oneDNN's in fp32. Intel CPUs keep LibTorch's route (MKL), not compared there.
  if (cpu_is_intel()) return DinoV3Kernels::Torch;
  if (own && (dtype == torch::kBFloat16 || !onednn)) return DinoV3Kernels::Vidfuse;
  return onednn ? DinoV3Kernels::Onednn : DinoV3Kernels::Torch;
}

GemmKernel dinov3_gemm_kernel(DinoV3Kernels kernels) {
  return kernels == DinoV3Kernels::Vidfuse ? GemmKernel::Vidfuse : GemmKernel::Onednn;
}

onednn::Act dinov3_mlp_act(const DinoV3Config& config) {
  const std::string& act = config.hidden_act;
  if (act == "gelu") return onednn::Act::GeluErf;
  if (act == "silu") return onednn::Act::Silu;
  if (act == "relu") return onednn::Act::Relu;
  return onednn::Act::GeluTanh;  // gelu_pytorch_tanh, as activation() above
}

const char* dinov3_kernels_name(DinoV3Kernels kernels) {
  switch (kernels) {
    case DinoV3Kernels::Onednn:
      return "onednn";
    case DinoV3Kernels::Vidfuse:
      return "vidfuse";
    case DinoV3Kernels::Torch:
      break;
  }
  return "torch";
}

void DinoV3ViTImpl::fuse_for_inference() {
  torch::NoGradGuard no_grad;
  fused_.clear();
  const torch::Tensor& w0 = embeddings->patch_embeddings->weight;
  kernels_ = dinov3_kernels(w0.scalar_type(), w0.device());
  const GemmKernel gemm = dinov3_gemm_kernel(kernels_);
  const double scale = std::pow(config_.head_dim(), -0.5);
  for (const auto& module : *layer) {
    auto l = std::dynamic_pointer_cast<DinoV3LayerImpl>(module);
    const auto& a = l->attention;
    auto bias_or_zero = [&](const torch::nn::Linear& lin) {
      return lin->bias.defined() ? lin->bias
                                 : torch::zeros({lin->weight.size(0)}, lin->weight.options());
    };
    FusedLayer f;
    // The attention scale commutes with RoPE (a rotation), so it can live in the q weights.
    const torch::Tensor qkv_w =
        torch::cat({a->q_proj->weight * scale, a->k_proj->weight, a->v_proj->weight}, 0);
    const torch::Tensor qkv_b = torch::cat(
        {bias_or_zero(a->q_proj) * scale, bias_or_zero(a->k_proj), bias_or_zero(a->v_proj)});
    const torch::Tensor ls1 = l->layer_scale1->lambda1, ls2 = l->layer_scale2->lambda1;
    const torch::Tensor o_w = a->o_proj->weight * ls1.unsqueeze(1),
                        o_b = bias_or_zero(a->o_proj) * ls1;
    const auto& m = l->mlp;
    const torch::Tensor down_w = m->down_proj->weight * ls2.unsqueeze(1),
                        down_b = bias_or_zero(m->down_proj) * ls2;
    if (kernels_ != DinoV3Kernels::Torch) {
      using onednn::Act;
      using onednn::Epilogue;
      f.dqkv = FusedLinear(qkv_w, qkv_b, Act::None, Epilogue::Store, gemm);
      f.do_ = FusedLinear(o_w, o_b, Act::None, Epilogue::Accumulate, gemm);
      const onednn::Act act = dinov3_mlp_act(config_);
      if (m->gate_proj) {
        // down(act(gate(h)) * up(h)): up plain, gate's epilogue applies act and the product.
        f.dup = FusedLinear(m->up_proj->weight, bias_or_zero(m->up_proj), Act::None,
                            Epilogue::Store, gemm);
        f.dgate = FusedLinear(m->gate_proj->weight, bias_or_zero(m->gate_proj), act,
                              Epilogue::Multiply, gemm);
      } else {
        f.dup =
            FusedLinear(m->up_proj->weight, bias_or_zero(m->up_proj), act, Epilogue::Store, gemm);
      }
      f.ddown = FusedLinear(down_w, down_b, Act::None, Epilogue::Accumulate, gemm);
    } else {
      f.qkv = PackedLinear(qkv_w, qkv_b);
      f.o = PackedLinear(o_w, o_b);
      f.up = PackedLinear(m->up_proj->weight, bias_or_zero(m->up_proj));
      if (m->gate_proj) f.gate = PackedLinear(m->gate_proj->weight, bias_or_zero(m->gate_proj));
      f.down = PackedLinear(down_w, down_b);
    }
    fused_.push_back(std::move(f));
  }
}

void DinoV3ViTImpl::fused_layer_forward_(const FusedLayer& f, const DinoV3Layer& l,
                                         torch::Tensor& x, int64_t batch, const torch::Tensor& cos,
                                         const torch::Tensor& sin) {
  const int64_t rows = x.size(0), c = x.size(1), n = rows / batch;
  const int64_t nh = config_.num_attention_heads, hd = config_.head_dim();
  if (kernels_ != DinoV3Kernels::Torch) {
    const torch::Tensor qkv = f.dqkv(layer_norm(x, l->norm1));
    const torch::Tensor parts = qkv.view({batch, n, 3, nh, hd});
    const torch::Tensor v = parts.select(2, 2).transpose(1, 2);
    torch::Tensor attn;
    if (rope_in_attention() && qkv.is_contiguous() &&
        attention_uses_fused(parts.select(2, 0).transpose(1, 2), parts.select(2, 1).transpose(1, 2),
                             v)) {
      attn = fused_rope_attention(qkv, batch, nh, cos, sin, 1.0);
    } else {
      auto [q, k] = rope_qkv(qkv, batch, n, nh, hd, cos, sin);
      attn = attention(q, k, v, 1.0);
    }
    f.do_.accumulate(attn.view({rows, c}), x);  // x += ls1 * o_proj
    const torch::Tensor h = layer_norm(x, l->norm2);
    const torch::Tensor u = f.dgate.defined() ? f.dgate(h, f.dup(h)) : f.dup(h);
    f.ddown.accumulate(u, x);  // x += ls2 * down_proj
    return;
  }

  torch::Tensor qkv =
      f.qkv(layer_norm(x, l->norm1)).view({batch, n, 3, nh, hd}).permute({2, 0, 3, 1, 4});
  torch::Tensor q = apply_rope(qkv[0], cos, sin);
  torch::Tensor k = apply_rope(qkv[1], cos, sin);
  // The attention scale is folded into the query weights.
  torch::Tensor attn = attention(q, k, qkv[2], 1.0).view({rows, c});
  x.add_(f.o(attn));  // residual + ls1 * o_proj (ls folded)

  torch::Tensor h = layer_norm(x, l->norm2);
  torch::Tensor u = f.up(h);
  if (f.gate.defined()) {
    torch::Tensor g = f.gate(h);
    activation_(g, config_.hidden_act);
    u.mul_(g);
  } else {
    activation_(u, config_.hidden_act);
  }
  x.add_(f.down(u));  // residual + ls2 * down_proj (ls folded)
}

void DinoV3ViTImpl::check_input(torch::IntArrayRef sizes) const {
  if (sizes.size() != 4 || sizes[1] != config_.num_channels)
    throw Error("DINOv3 expects pixel_values [B, " + std::to_string(config_.num_channels) +
                ", H, W], got " + shape_text(sizes));
  // An empty batch would reach a division by the batch size in the fused layers (SIGFPE).
  if (sizes[0] < 1) throw Error("DINOv3 pixel_values " + shape_text(sizes) + " hold no images");
  const int64_t p = config_.patch_size;
  if (sizes[2] < p || sizes[3] < p)
    throw Error("DINOv3 pixel_values " + shape_text(sizes) + " are smaller than one " +
                std::to_string(p) + "x" + std::to_string(p) + " patch");
}

DinoV3Output DinoV3ViTImpl::forward(const torch::Tensor& pixel_values,
                                    const std::vector<int64_t>& intermediate_layers) {
  check_input(pixel_values.sizes());
  const int64_t p = config_.patch_size;
  const int64_t gh = pixel_values.size(2) / p, gw = pixel_values.size(3) / p;
  const int64_t num_layers = config_.num_hidden_layers;
  std::vector<int64_t> wanted;
  for (int64_t i : intermediate_layers) {
    const int64_t idx = i < 0 ? num_layers + i : i;
    if (idx < 0 || idx >= num_layers)
      throw Error("intermediate layer " + std::to_string(i) + " out of range for a " +
                  std::to_string(num_layers) + "-layer model");
    wanted.push_back(idx);
  }

  torch::Tensor x = embeddings(pixel_values);
  auto [cos, sin] = dinov3_rope_tables(gh, gw, config_.head_dim(), config_.rope_theta, x.options());
  const bool use_fused = fused() && !(torch::GradMode::is_enabled() && x.requires_grad());
  std::map<int64_t, torch::Tensor> kept;
  const int64_t b = x.size(0), n = x.size(1), c = x.size(2);
  if (use_fused) x = x.reshape({b * n, c});  // the fused layers update it in place
  for (int64_t i = 0; i < num_layers; ++i) {
    const auto l = layer->ptr<DinoV3LayerImpl>(i);
    if (use_fused)
      fused_layer_forward_(fused_[i], DinoV3Layer(l), x, b, cos, sin);
    else
      x = l->forward(x, cos, sin);
    if (std::find(wanted.begin(), wanted.end(), i) != wanted.end())
      kept[i] = use_fused ? x.view({b, n, c}).clone() : x;
  }
  x = x.view({b, n, c});
  DinoV3Output out;
  out.last_hidden_state = layer_norm(x, norm);
  out.pooler_output = out.last_hidden_state.select(1, 0);
  const int64_t prefix = 1 + config_.num_register_tokens;
  out.patch_tokens = out.last_hidden_state.narrow(1, prefix, gh * gw)
                         .reshape({x.size(0), gh, gw, config_.hidden_size});
  for (int64_t idx : wanted) out.intermediate.push_back(layer_norm(kept[idx], norm));
  return out;
}

torch::Tensor pool_patch_grid(const torch::Tensor& patch, int64_t pool) {
  if (pool < 1) throw Error("patch-grid pool must be >= 1, got " + std::to_string(pool));
  if (pool == 1) return patch;
  return torch::avg_pool2d(patch.permute({0, 3, 1, 2}), {pool, pool}, {pool, pool}, {0, 0},
                           /*ceil_mode=*/true, /*count_include_pad=*/false)
      .permute({0, 2, 3, 1});
}

// ---------------------------------------------------------------- checkpoints

weights::TensorMap dinov3_canonical_names(const weights::TensorMap& in) {
  weights::TensorMap state = weights::strip_prefix(in, "module.");
  const bool original = state.count("cls_token") || state.count("patch_embed.proj.weight");
  if (!original) return state;
  weights::TensorMap out;
  static const std::regex block(R"(blocks\.(\d+)\.(.+))");
  for (const auto& [name, t] : state) {
    std::smatch m;
    if (name == "cls_token")
      out["embeddings.cls_token"] = t.reshape({1, 1, -1});
    else if (name == "mask_token")
      out["embeddings.mask_token"] = t.reshape({1, 1, -1});
    else if (name == "storage_tokens" || name == "register_tokens")
      out["embeddings.register_tokens"] = t.reshape({1, -1, t.size(-1)});
    else if (name.rfind("patch_embed.proj.", 0) == 0)
      out["embeddings.patch_embeddings." + name.substr(17)] = t;
    else if (name.rfind("norm.", 0) == 0)
      out[name] = t;
    else if (std::regex_match(name, m, block)) {
      const std::string pre = "layer." + m[1].str() + ".";
      const std::string rest = m[2].str();
      if (rest == "attn.qkv.weight" || rest == "attn.qkv.bias") {
        const std::string kind = rest.substr(9);  // weight | bias
        auto parts = t.chunk(3, 0);
        out[pre + "attention.q_proj." + kind] = parts[0];
        // The original masks the k bias to zero (bias_mask); HF has no k bias at all.
        if (kind == "weight") out[pre + "attention.k_proj.weight"] = parts[1];
        out[pre + "attention.v_proj." + kind] = parts[2];
      } else if (rest.rfind("attn.proj.", 0) == 0)
        out[pre + "attention.o_proj." + rest.substr(10)] = t;
      else if (rest == "ls1.gamma")
        out[pre + "layer_scale1.lambda1"] = t;
      else if (rest == "ls2.gamma")
        out[pre + "layer_scale2.lambda1"] = t;
      else if (rest.rfind("norm1.", 0) == 0 || rest.rfind("norm2.", 0) == 0)
        out[pre + rest] = t;
      else if (rest.rfind("mlp.fc1.", 0) == 0)
        out[pre + "mlp.up_proj." + rest.substr(8)] = t;
      else if (rest.rfind("mlp.fc2.", 0) == 0)
        out[pre + "mlp.down_proj." + rest.substr(8)] = t;
      else if (rest.rfind("mlp.w1.", 0) == 0)
        out[pre + "mlp.gate_proj." + rest.substr(7)] = t;
      else if (rest.rfind("mlp.w2.", 0) == 0)
        out[pre + "mlp.up_proj." + rest.substr(7)] = t;
      else if (rest.rfind("mlp.w3.", 0) == 0)
        out[pre + "mlp.down_proj." + rest.substr(7)] = t;
      else if (rest == "attn.qkv.bias_mask")
        continue;
      else
        out[name] = t;  // left for strict loading to report
    } else if (name.rfind("rope_embed.", 0) == 0) {
      continue;  // the periods buffer is recomputed from rope_theta
    } else {
      out[name] = t;
    }
  }
  return out;
}

DinoV3Config dinov3_config_from_weights(const weights::TensorMap& s) {
  auto need = [&](const std::string& k, int64_t rank) -> const torch::Tensor& {
    auto it = s.find(k);
    if (it == s.end()) throw Error("cannot infer the DINOv3 config: no tensor '" + k + "'");
    if (it->second.dim() != rank)
      throw Error("cannot infer the DINOv3 config: tensor '" + k + "' has shape " +
                  shape_text(it->second) + ", expected " + std::to_string(rank) + " dims");
    return it->second;
  };
  DinoV3Config c;
  c.hidden_size = need("embeddings.cls_token", 3).size(-1);
  c.patch_size = need("embeddings.patch_embeddings.weight", 4).size(-1);
  c.num_channels = need("embeddings.patch_embeddings.weight", 4).size(1);
  c.num_register_tokens =
      s.count("embeddings.register_tokens") ? need("embeddings.register_tokens", 3).size(1) : 0;
  int64_t layers = 0;
  while (s.count("layer." + std::to_string(layers) + ".norm1.weight")) ++layers;
  c.num_hidden_layers = layers;
  c.intermediate_size = need("layer.0.mlp.up_proj.weight", 2).size(0);
  c.use_gated_mlp = s.count("layer.0.mlp.gate_proj.weight") > 0;
  c.hidden_act = c.use_gated_mlp ? "silu" : "gelu";
  // Every released variant uses 64-wide heads except 7B (128).
  c.num_attention_heads = c.hidden_size == 4096 ? 32 : c.hidden_size / 64;
  c.query_bias = s.count("layer.0.attention.q_proj.bias") > 0;
  c.key_bias = s.count("layer.0.attention.k_proj.bias") > 0;
  c.value_bias = s.count("layer.0.attention.v_proj.bias") > 0;
  c.proj_bias = s.count("layer.0.attention.o_proj.bias") > 0;
  c.mlp_bias = s.count("layer.0.mlp.up_proj.bias") > 0;
  c.validate("inferred config");
  return c;
}

// The shapes a config gives the tensors that size the model, checked against the checkpoint
// before the model is built: a config.json claiming intermediate_size 2e6 would otherwise
// allocate gigabytes of parameters only for the strict load to refuse them. With every layer's
// large matrices checked, the model built is no larger than the checkpoint holds.
void check_config_fits_weights(const DinoV3Config& c, const weights::TensorMap& s,
                               const std::string& config_source, const std::string& weights_path) {
  auto expect = [&](const std::string& key, std::vector<int64_t> shape) {
    auto it = s.find(key);
    if (it == s.end())
      fail_file(config_source, "describes a tensor " + key + " of shape " + shape_text(shape) +
                                   " that the weights (" + weights_path + ") do not have");
    if (it->second.sizes() != c10::IntArrayRef(shape))
      fail_file(config_source, "gives " + key + " the shape " + shape_text(shape) +
                                   ", but in the weights (" + weights_path + ") it is " +
                                   shape_text(it->second) +
                                   " (hidden_size, intermediate_size, patch_size, "
                                   "num_channels or num_register_tokens disagree)");
  };
  const int64_t h = c.hidden_size, p = c.patch_size;
  expect("embeddings.patch_embeddings.weight", {h, c.num_channels, p, p});
  expect("embeddings.cls_token", {1, 1, h});
  if (c.num_register_tokens > 0)
    expect("embeddings.register_tokens", {1, c.num_register_tokens, h});
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string l = "layer." + std::to_string(i) + ".";
    expect(l + "attention.q_proj.weight", {h, h});
    expect(l + "mlp.up_proj.weight", {c.intermediate_size, h});
    expect(l + "mlp.down_proj.weight", {h, c.intermediate_size});
  }
}

DinoV3ViT load_dinov3(const std::string& path, torch::ScalarType dtype) {
  if (dtype == torch::kFloat16)
    throw Error(path +
                ": DINOv3 is not run in fp16: its activations overflow the fp16 range; use "
                "bf16 (same speed on hardware that has it) or fp32");
  namespace fs = std::filesystem;
  weights::TensorMap raw = weights::read_checkpoint(path);
  weights::TensorMap state;
  try {
    state = dinov3_canonical_names(raw);
  } catch (const c10::Error& e) {  // a reshape of a malformed original-naming tensor
    fail_file(path, std::string("malformed DINOv3 tensors: ") + e.what_without_backtrace());
  }
  raw.clear();
  const fs::path config_path = fs::is_directory(path)
                                   ? fs::path(path) / "config.json"
                                   : fs::path(path).parent_path() / "config.json";
  const bool from_file = fs::exists(config_path) && fs::is_directory(path);
  DinoV3Config config;
  if (from_file) {
    config = DinoV3Config::from_file(config_path.string());
  } else {
    try {
      config = dinov3_config_from_weights(state);
    } catch (const Error& e) {
      fail_file(path, std::string("not a DINOv3 checkpoint: ") + e.what());
    }
  }
  check_config_fits_weights(config, state, from_file ? config_path.string() : path, path);
  DinoV3ViT model(config);
  weights::load_state_dict(*model, state, {/*strict=*/true, path});
  model->to(dtype);
  model->eval();
  return model;
}

}  // namespace vidfuse::models
