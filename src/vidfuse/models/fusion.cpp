#include "vidfuse/models/fusion.h"

#include <cmath>
#include <sstream>

#include "vidfuse/core/error.h"
#include "vidfuse/core/linear.h"
#include "vidfuse/core/shape_text.h"
#include "vidfuse/models/attention.h"

namespace vidfuse::models {
namespace F = torch::nn::functional;

namespace {

// The reduced-precision compute dtype of the forward in progress on this thread (like autocast,
// which is thread-local too); nullopt = compute in the parameters' dtype.
thread_local std::optional<torch::ScalarType> t_compute_dtype;

struct ComputeDtypeScope {
  explicit ComputeDtypeScope(std::optional<torch::ScalarType> dtype) : saved(t_compute_dtype) {
    t_compute_dtype = dtype;
  }
  ~ComputeDtypeScope() { t_compute_dtype = saved; }
  std::optional<torch::ScalarType> saved;
};

// Linear in the compute dtype; the casts of the fp32 weights are differentiable, so gradients
// land on the fp32 master weights. Without a graph to record (evaluation, prediction) it takes the
// frozen models' route: oneDNN where that is the faster kernel (core/linear.h).
torch::Tensor linear(torch::nn::Linear layer, const torch::Tensor& x) {
  const auto dt = t_compute_dtype.value_or(layer->weight.scalar_type());
  const torch::Tensor w = layer->weight.to(dt);
  const torch::Tensor b = layer->bias.defined() ? layer->bias.to(dt) : torch::Tensor();
  if (!torch::GradMode::is_enabled()) return linear_no_grad(x.to(dt), w, b);
  return torch::linear(x.to(dt), w, b);
}

// LayerNorm always in the parameters' dtype (fp32 statistics under bf16 compute).
torch::Tensor apply_norm(torch::nn::LayerNorm layer, const torch::Tensor& x) {
  return layer->forward(x.to(layer->weight.scalar_type()));
}

torch::Tensor maybe_dropout(const torch::Tensor& x, double p, bool training) {
  return p > 0 && training ? torch::dropout(x, p, /*train=*/true) : x;
}

// N(0, std²) truncated to ±2 std by inverse-CDF sampling (as torch.nn.init.trunc_normal_, which
// the C++ frontend lacks).
void trunc_normal(torch::Tensor t, double std) {
  torch::NoGradGuard no_grad;
  const double bound = std::erf(2.0 / std::sqrt(2.0));  // CDF(±2) mapped to [-1, 1]
  t.uniform_(-bound, bound).erfinv_().mul_(std * std::sqrt(2.0)).clamp_(-2 * std, 2 * std);
}

void init_linear(torch::nn::Linear& layer) {
  torch::NoGradGuard no_grad;
  trunc_normal(layer->weight, 0.02);
  if (layer->bias.defined()) layer->bias.zero_();
}

torch::Tensor embedding_table(torch::IntArrayRef shape) {
  auto t = torch::empty(shape);
  trunc_normal(t, 0.02);
  return t;
}

// [n, D] table resampled to m rows (linear, align_corners=false, as ViTs resample position tables).
torch::Tensor resize_table(const torch::Tensor& table, int64_t m) {
  if (table.size(0) == m) return table;
  auto t = table.t().unsqueeze(0);  // [1, D, n]
  t = F::interpolate(t, F::InterpolateFuncOptions()
                            .size(std::vector<int64_t>{m})
                            .mode(torch::kLinear)
                            .align_corners(false));
  return t.squeeze(0).t();
}

}  // namespace

// --- FusionInput --------------------------------------------------------------------------------

FusionInput FusionInput::to(const torch::Device& device,
                            std::optional<torch::ScalarType> dtype) const {
  auto move = [&](const torch::Tensor& t) {
    if (!t.defined()) return t;
    return dtype ? t.to(device, *dtype) : t.to(device);
  };
  return {move(semantic), move(semantic_cls), move(motion)};
}

int64_t FusionInput::batch_size() const {
  if (semantic.defined()) return semantic.size(0);
  if (motion.defined()) return motion.size(0);
  return 0;
}

// --- Attention ----------------------------------------------------------------------------------

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads, double attn_dropout)
    : heads_(heads), attn_dropout_(attn_dropout) {
  q_proj = register_module("q_proj", torch::nn::Linear(dim, dim));
  // No key bias: it adds q·b to every score of a query alike, which softmax cancels, so its
  // gradient is rounding noise that Adam would amplify into a random walk.
  k_proj =
      register_module("k_proj", torch::nn::Linear(torch::nn::LinearOptions(dim, dim).bias(false)));
  v_proj = register_module("v_proj", torch::nn::Linear(dim, dim));
  o_proj = register_module("o_proj", torch::nn::Linear(dim, dim));
  for (auto* l : {&q_proj, &k_proj, &v_proj, &o_proj}) init_linear(*l);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& query, const torch::Tensor& context) {
  const int64_t B = query.size(0), Nq = query.size(1), Nk = context.size(1), D = query.size(2);
  const int64_t Dh = D / heads_;
  auto split = [&](const torch::Tensor& x, int64_t n) {
    return x.view({B, n, heads_, Dh}).transpose(1, 2);  // [B, H, n, Dh]
  };
  auto q = split(linear(q_proj, query), Nq);
  auto k = split(linear(k_proj, context), Nk);
  auto v = split(linear(v_proj, context), Nk);
  const double scale = 1.0 / std::sqrt(static_cast<double>(Dh));
  if (attn_dropout_ == 0 || !is_training())  // the common case: per-head kernels (attention.h)
    return linear(o_proj, attention(q, k, v, scale));
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
  // Softmax in at least fp32 so that bf16 compute does not flatten the distribution.
  const auto acc = scores.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto probs = torch::softmax(scores.to(acc), -1).to(v.scalar_type());
  probs = maybe_dropout(probs, attn_dropout_, is_training());
  auto out = torch::matmul(probs, v).transpose(1, 2).reshape({B, Nq, D});
  return linear(o_proj, out);
}

// --- FeedForward --------------------------------------------------------------------------------

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t hidden, double dropout) : dropout_(dropout) {
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
  init_linear(fc1);
  init_linear(fc2);
}

torch::Tensor FeedForwardImpl::forward(const torch::Tensor& x) {
  auto h = torch::gelu(linear(fc1, x));
  return linear(fc2, maybe_dropout(h, dropout_, is_training()));
}

// --- StreamEmbed --------------------------------------------------------------------------------

StreamEmbedImpl::StreamEmbedImpl(int64_t in_dim, int64_t width, std::array<int64_t, 3> grid,
                                 bool with_cls, double eps) {
  proj = register_module("proj", torch::nn::Linear(in_dim, width));
  init_linear(proj);
  norm =
      register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
  time_embed = register_parameter("time_embed", embedding_table({grid[0], width}));
  row_embed = register_parameter("row_embed", embedding_table({grid[1], width}));
  col_embed = register_parameter("col_embed", embedding_table({grid[2], width}));
  type_embed = register_parameter("type_embed", embedding_table({width}));
  if (with_cls) cls_embed = register_parameter("cls_embed", embedding_table({width}));
  input_mean = register_buffer("input_mean", torch::zeros({in_dim}));
  input_std = register_buffer("input_std", torch::ones({in_dim}));
}

void StreamEmbedImpl::set_input_statistics(const torch::Tensor& mean, const torch::Tensor& std) {
  TORCH_CHECK(mean.sizes() == input_mean.sizes() && std.sizes() == input_std.sizes(),
              "input statistics must be [", input_mean.size(0), "]");
  torch::NoGradGuard no_grad;
  input_mean.copy_(mean);
  input_std.copy_(std);
}

torch::Tensor StreamEmbedImpl::forward(const torch::Tensor& grid, const torch::Tensor& cls) {
  const int64_t B = grid.size(0), T = grid.size(1), H = grid.size(2), W = grid.size(3);
  const int64_t D = time_embed.size(1);
  auto standardize = [&](const torch::Tensor& t) {
    return (t.to(input_mean.scalar_type()) - input_mean) / input_std;
  };
  auto x = apply_norm(this->norm, linear(proj, standardize(grid)));  // [B, T, H, W, D]
  auto time = resize_table(time_embed, T);
  auto pos = time.view({T, 1, 1, D}) + resize_table(row_embed, H).view({1, H, 1, D}) +
             resize_table(col_embed, W).view({1, 1, W, D});
  auto tokens = (x + pos).reshape({B, T * H * W, D});
  if (cls.defined()) {
    auto c = apply_norm(this->norm, linear(proj, standardize(cls))) + time + cls_embed;  // [B,T,D]
    tokens = torch::cat({tokens, c}, 1);
  }
  return tokens + type_embed;
}

// --- CrossAttentionLayer ------------------------------------------------------------------------

namespace {
torch::nn::LayerNorm make_norm(const FusionConfig& c) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.width}).eps(c.layer_norm_eps));
}
int64_t ffn_hidden(const FusionConfig& c) { return std::lround(c.width * c.mlp_ratio); }
}  // namespace

CrossAttentionLayerImpl::CrossAttentionLayerImpl(const FusionConfig& c) : dropout_(c.dropout) {
  sem_norm = register_module("sem_norm", make_norm(c));
  mot_norm = register_module("mot_norm", make_norm(c));
  sem_attn = register_module("sem_attn", Attention(c.width, c.heads, c.attn_dropout));
  sem_ffn_norm = register_module("sem_ffn_norm", make_norm(c));
  sem_ffn = register_module("sem_ffn", FeedForward(c.width, ffn_hidden(c), c.dropout));
  sem_attn_gate = register_parameter("sem_attn_gate", torch::zeros({1}));
  sem_ffn_gate = register_parameter("sem_ffn_gate", torch::zeros({1}));
  if (c.bidirectional) {
    mot_attn = register_module("mot_attn", Attention(c.width, c.heads, c.attn_dropout));
    mot_ffn_norm = register_module("mot_ffn_norm", make_norm(c));
    mot_ffn = register_module("mot_ffn", FeedForward(c.width, ffn_hidden(c), c.dropout));
    mot_attn_gate = register_parameter("mot_attn_gate", torch::zeros({1}));
    mot_ffn_gate = register_parameter("mot_ffn_gate", torch::zeros({1}));
  }
}

std::pair<torch::Tensor, torch::Tensor> CrossAttentionLayerImpl::forward(torch::Tensor s,
                                                                         torch::Tensor m) {
  const bool train = is_training();
  auto sn = apply_norm(sem_norm, s);
  auto mn = apply_norm(mot_norm, m);
  // Both directions read the layer's inputs, so neither stream sees the other's update first.
  auto branch = [&](const torch::Tensor& gate, const torch::Tensor& update) {
    return torch::tanh(gate) * maybe_dropout(update, dropout_, train);
  };
  auto s_upd = branch(sem_attn_gate, sem_attn(sn, mn));
  if (mot_attn) m = m + branch(mot_attn_gate, mot_attn(mn, sn));
  s = s + s_upd;
  s = s + branch(sem_ffn_gate, sem_ffn(apply_norm(sem_ffn_norm, s)));
  if (mot_ffn) m = m + branch(mot_ffn_gate, mot_ffn(apply_norm(mot_ffn_norm, m)));
  return {s, m};
}

// --- AttentivePooler ----------------------------------------------------------------------------

AttentivePoolerImpl::AttentivePoolerImpl(const FusionConfig& c) : dropout_(c.dropout) {
  queries = register_parameter("queries", embedding_table({c.pool_queries, c.width}));
  kv_norm = register_module("kv_norm", make_norm(c));
  attn = register_module("attn", Attention(c.width, c.heads, c.attn_dropout));
  ffn_norm = register_module("ffn_norm", make_norm(c));
  ffn = register_module("ffn", FeedForward(c.width, ffn_hidden(c), c.dropout));
}

torch::Tensor AttentivePoolerImpl::forward(const torch::Tensor& tokens) {
  const bool train = is_training();
  const int64_t B = tokens.size(0);
  auto q = queries.unsqueeze(0).expand({B, queries.size(0), queries.size(1)});
  // The queries are learned directly at the residual scale, so they are not normalised (V-JEPA).
  q = q + maybe_dropout(attn(q, apply_norm(kv_norm, tokens)), dropout_, train);
  q = q + maybe_dropout(ffn(apply_norm(ffn_norm, q)), dropout_, train);
  return q.flatten(1);
}

// --- FusionModel --------------------------------------------------------------------------------

FusionModelImpl::FusionModelImpl(FusionConfig config) : config_(std::move(config)) {
  const auto& c = config_;
  c.validate();
  const bool uses_semantic = c.arch != FusionArch::kMotion;
  const bool uses_motion = c.arch != FusionArch::kSemantic;
  if (uses_semantic)
    semantic_embed =
        register_module("semantic_embed", StreamEmbed(c.semantic_dim, c.width,
                                                      pooled_semantic_grid(c, c.semantic_grid),
                                                      c.use_cls, c.layer_norm_eps));
  if (uses_motion)
    motion_embed = register_module(
        "motion_embed",
        StreamEmbed(c.motion_dim, c.width, c.motion_grid, /*with_cls=*/false, c.layer_norm_eps));
  int64_t feature_dim = c.pool_queries * c.width;
  if (c.arch == FusionArch::kFusion) {
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < c.depth; ++i) layers->push_back(CrossAttentionLayer(c));
  }
  if (c.arch == FusionArch::kLate || (c.arch == FusionArch::kFusion && !c.joint_pool)) {
    semantic_pool = register_module("semantic_pool", AttentivePooler(c));
    motion_pool = register_module("motion_pool", AttentivePooler(c));
    feature_dim *= 2;
  } else {
    pool = register_module("pool", AttentivePooler(c));
  }
  head_norm = register_module(
      "head_norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({feature_dim}).eps(c.layer_norm_eps)));
  classifier = register_module("classifier", torch::nn::Linear(feature_dim, c.num_classes));
  init_linear(classifier);
}

void FusionModelImpl::check_input(const FusionInput& in) const {
  const auto& c = config_;
  const std::string where = "fusion model (" + arch_name(c.arch) + ")";
  auto fail = [&](const std::string& what) { throw Error(where + ": " + what); };
  int64_t B = -1;
  if (c.arch != FusionArch::kMotion) {
    if (!in.semantic.defined()) fail("the input has no semantic features");
    if (in.semantic.dim() != 5)
      fail("semantic features must be [B, T, h, w, C], got " + shape_text(in.semantic));
    if (in.semantic.size(4) != c.semantic_dim)
      fail("semantic features have " + std::to_string(in.semantic.size(4)) +
           " channels, the config expects semantic_dim " + std::to_string(c.semantic_dim));
    if (in.semantic.numel() == 0)
      fail("semantic features " + shape_text(in.semantic) +
           " are empty (a batch, frame count or grid of 0)");
    B = in.semantic.size(0);
    if (c.use_cls) {
      if (!in.semantic_cls.defined())
        fail(
            "the config has use_cls = true but the input has no semantic CLS tokens "
            "(set use_cls to false to train on patch tokens only)");
      const auto& s = in.semantic;
      if (in.semantic_cls.dim() != 3 || in.semantic_cls.size(0) != B ||
          in.semantic_cls.size(1) != s.size(1) || in.semantic_cls.size(2) != c.semantic_dim)
        fail("semantic CLS tokens must be [B, T, C] = [" + std::to_string(B) + ", " +
             std::to_string(s.size(1)) + ", " + std::to_string(c.semantic_dim) + "], got " +
             shape_text(in.semantic_cls));
    }
  }
  if (c.arch != FusionArch::kSemantic) {
    if (!in.motion.defined()) fail("the input has no motion features");
    if (in.motion.dim() != 5)
      fail("motion features must be [B, C, T, H, W], got " + shape_text(in.motion));
    if (in.motion.size(1) != c.motion_dim)
      fail("motion features have " + std::to_string(in.motion.size(1)) +
           " channels, the config expects motion_dim " + std::to_string(c.motion_dim));
    if (in.motion.numel() == 0)
      fail("motion features " + shape_text(in.motion) +
           " are empty (a batch, frame count or grid of 0)");
    if (B >= 0 && in.motion.size(0) != B)
      fail("semantic and motion batch sizes differ: " + std::to_string(B) + " vs " +
           std::to_string(in.motion.size(0)));
  }
}

torch::Tensor FusionModelImpl::semantic_tokens(const FusionInput& in) {
  auto s = in.semantic;  // [B, T, h, w, C]
  const int64_t k = config_.semantic_pool;
  if (k > 1) {
    const int64_t B = s.size(0), T = s.size(1), C = s.size(4);
    auto x = s.reshape({B * T, s.size(2), s.size(3), C}).permute({0, 3, 1, 2});
    x = F::avg_pool2d(
        x, F::AvgPool2dFuncOptions(k).stride(k).ceil_mode(true).count_include_pad(false));
    s = x.permute({0, 2, 3, 1}).reshape({B, T, x.size(2), x.size(3), C});
  }
  return semantic_embed(s, config_.use_cls ? in.semantic_cls : torch::Tensor());
}

torch::Tensor FusionModelImpl::motion_tokens(const FusionInput& in) {
  return motion_embed(in.motion.permute({0, 2, 3, 4, 1}));  // channels last
}

torch::Tensor FusionModelImpl::features(const FusionInput& in) {
  check_input(in);
  ComputeDtypeScope scope(compute_dtype_);
  switch (config_.arch) {
    case FusionArch::kSemantic:
      return pool(semantic_tokens(in));
    case FusionArch::kMotion:
      return pool(motion_tokens(in));
    case FusionArch::kLate:
      return torch::cat({semantic_pool(semantic_tokens(in)), motion_pool(motion_tokens(in))}, 1);
    case FusionArch::kFusion:
      break;
  }
  auto s = semantic_tokens(in);
  auto m = motion_tokens(in);
  for (const auto& layer : *layers)
    std::tie(s, m) = layer->as<CrossAttentionLayer>()->forward(s, m);
  if (config_.joint_pool) return pool(torch::cat({s, m}, 1));
  return torch::cat({semantic_pool(s), motion_pool(m)}, 1);
}

torch::Tensor FusionModelImpl::forward(const FusionInput& in) {
  auto f = features(in);
  ComputeDtypeScope scope(compute_dtype_);
  f = maybe_dropout(apply_norm(head_norm, f), config_.head_dropout, is_training());
  return linear(classifier, f).to(head_norm->weight.scalar_type());
}

// --- cost ---------------------------------------------------------------------------------------

FusionCost fusion_forward_cost(const FusionConfig& c, const std::array<int64_t, 3>& sg,
                               const std::array<int64_t, 3>& mg, bool with_cls) {
  const double D = c.width, Fh = ffn_hidden(c), Q = c.pool_queries;
  const auto ps = pooled_semantic_grid(c, sg);
  FusionCost cost;
  cost.semantic_tokens = ps[0] * ps[1] * ps[2] + (with_cls && c.use_cls ? ps[0] : 0);
  cost.motion_tokens = mg[0] * mg[1] * mg[2];
  const double Ns = cost.semantic_tokens, Nm = cost.motion_tokens;
  auto attention = [&](double nq, double nk) {
    return 2 * nq * D * D * 2      // q and o projections
           + 2 * nk * D * D * 2    // k and v projections
           + 2 * nq * nk * D * 2;  // scores and weighted sum
  };
  auto ffn = [&](double n) { return 2 * n * D * Fh * 2; };
  const bool sem = c.arch != FusionArch::kMotion, mot = c.arch != FusionArch::kSemantic;
  double f = 0;
  if (sem) {
    f += double(sg[0]) * sg[1] * sg[2] * c.semantic_dim * (c.semantic_pool > 1 ? 1 : 0);  // pool
    f += 2 * Ns * c.semantic_dim * D;
  }
  if (mot) f += 2 * Nm * c.motion_dim * D;
  if (c.arch == FusionArch::kFusion) {
    for (int64_t l = 0; l < c.depth; ++l) {
      f += attention(Ns, Nm) + ffn(Ns);
      if (c.bidirectional) f += attention(Nm, Ns) + ffn(Nm);
    }
    f += c.joint_pool ? attention(Q, Ns + Nm) + ffn(Q)
                      : attention(Q, Ns) + attention(Q, Nm) + 2 * ffn(Q);
  } else if (c.arch == FusionArch::kLate) {
    f += attention(Q, Ns) + attention(Q, Nm) + 2 * ffn(Q);
  } else {
    f += attention(Q, sem ? Ns : Nm) + ffn(Q);
  }
  const bool two_pools =
      c.arch == FusionArch::kLate || (c.arch == FusionArch::kFusion && !c.joint_pool);
  const double feature_dim = Q * D * (two_pools ? 2 : 1);
  f += 2 * feature_dim * c.num_classes;
  cost.flops = f;
  return cost;
}

}  // namespace vidfuse::models
