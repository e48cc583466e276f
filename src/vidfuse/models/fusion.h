// The cross-attention fusion classifier over precomputed stream features, and the baselines it is
// compared with (semantic-only and motion-only attentive probes, late fusion), in one file so that
// a reader sees the whole network in one place.
//
//   semantic [B,Ts,h,w,Cs] (+CLS [B,Ts,Cs]) ─► k×k avg pool ─► Linear ─► LN ─► + time/row/col +
//   type motion   [B,Cm,Tm,Hm,Wm]                 ─────────────────► Linear ─► LN ─► + time/row/col
//   + type
//        ─► L × CrossAttentionLayer (semantic ◄─ motion, optionally motion ◄─ semantic)
//        ─► AttentivePooler per stream (learnable queries; or one over all tokens with
//           joint_pool), concatenated ─► LN ─► Linear ─► logits [B,K]
#pragma once
#include <torch/torch.h>

#include <array>
#include <optional>

#include "vidfuse/models/fusion_config.h"

namespace vidfuse::models {

// A batch of stream features. `semantic_cls` may be undefined (no CLS tokens); a stream the chosen
// arch does not use may be undefined too.
struct FusionInput {
  torch::Tensor semantic;      // [B, Ts, h, w, Cs] patch tokens, channels last
  torch::Tensor semantic_cls;  // [B, Ts, Cs]
  torch::Tensor motion;        // [B, Cm, Tm, Hm, Wm] I3D Mixed_5c, channels first

  FusionInput to(const torch::Device& device, std::optional<torch::ScalarType> dtype = {}) const;
  int64_t batch_size() const;
};

// Multi-head attention of `query` tokens over `context` tokens, with separate q/k/v/o projections.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads, double attn_dropout);
  // query [B, Nq, D], context [B, Nk, D] -> [B, Nq, D]
  torch::Tensor forward(const torch::Tensor& query, const torch::Tensor& context);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t heads_;
  double attn_dropout_;
};
TORCH_MODULE(Attention);

// Two-layer GELU MLP.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t hidden, double dropout);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear fc1{nullptr}, fc2{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(FeedForward);

// Projects one stream's channels-last token grid to the common width and tags every token with
// where and when it is (factorised time + row + col tables, linearly interpolated when the grid
// differs from the configured one) and which stream it came from (type embedding).
class StreamEmbedImpl : public torch::nn::Module {
 public:
  StreamEmbedImpl(int64_t in_dim, int64_t width, std::array<int64_t, 3> grid, bool with_cls,
                  double eps);
  // grid [B, T, H, W, C], cls [B, T, C] or undefined -> tokens [B, T*H*W (+T), D]; the CLS tokens
  // (one per frame) come last and carry time + cls embeddings instead of row/col.
  torch::Tensor forward(const torch::Tensor& grid, const torch::Tensor& cls = {});
  // Per-channel statistics the inputs are standardised with before the projection ([in_dim]
  // each; identity until set).
  void set_input_statistics(const torch::Tensor& mean, const torch::Tensor& std);

  torch::nn::Linear proj{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  torch::Tensor time_embed, row_embed, col_embed, type_embed, cls_embed;
  torch::Tensor input_mean, input_std;  // buffers
};
TORCH_MODULE(StreamEmbed);

// One fusion layer, pre-norm with residuals: semantic tokens attend to motion tokens (and, when
// bidirectional, motion tokens to semantic ones, from the same normalised inputs), then each
// updated stream goes through its feed-forward block.
class CrossAttentionLayerImpl : public torch::nn::Module {
 public:
  CrossAttentionLayerImpl(const FusionConfig& config);
  std::pair<torch::Tensor, torch::Tensor> forward(torch::Tensor semantic, torch::Tensor motion);

  torch::nn::LayerNorm sem_norm{nullptr}, mot_norm{nullptr};
  Attention sem_attn{nullptr}, mot_attn{nullptr};
  torch::nn::LayerNorm sem_ffn_norm{nullptr}, mot_ffn_norm{nullptr};
  FeedForward sem_ffn{nullptr}, mot_ffn{nullptr};
  // Flamingo-style tanh gates on every residual branch, zero at init: a fresh model is exactly
  // the late-fusion baseline (each stream pooled on its own), and cross-stream mixing is added
  // only as far as training finds it useful. [1] each.
  torch::Tensor sem_attn_gate, sem_ffn_gate, mot_attn_gate, mot_ffn_gate;

 private:
  double dropout_;
};
TORCH_MODULE(CrossAttentionLayer);

// Learnable queries cross-attending to all tokens (V-JEPA-style attentive probe).
class AttentivePoolerImpl : public torch::nn::Module {
 public:
  AttentivePoolerImpl(const FusionConfig& config);
  // tokens [B, N, D] -> [B, Q * D]
  torch::Tensor forward(const torch::Tensor& tokens);

  torch::Tensor queries;  // [Q, D]
  torch::nn::LayerNorm kv_norm{nullptr}, ffn_norm{nullptr};
  Attention attn{nullptr};
  FeedForward ffn{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(AttentivePooler);

// The classifier. Which submodules exist depends on config.arch (see FusionArch); parameter names
// are e.g. `semantic_embed.proj.weight`, `layers.0.sem_attn.q_proj.weight`, `pool.queries`,
// `classifier.weight`.
class FusionModelImpl : public torch::nn::Module {
 public:
  explicit FusionModelImpl(FusionConfig config);

  torch::Tensor forward(const FusionInput& input);   // logits [B, K], fp32 (or the params' dtype)
  torch::Tensor features(const FusionInput& input);  // pooled features before the head

  // bf16 (or fp16) compute with fp32 master weights: matrix products run in `dtype`, while norms,
  // softmax, residual stream and logits stay in the parameters' dtype. Device-agnostic (no
  // autocast API needed). nullopt = compute in the parameters' dtype.
  void set_compute_dtype(std::optional<torch::ScalarType> dtype) { compute_dtype_ = dtype; }
  std::optional<torch::ScalarType> compute_dtype() const { return compute_dtype_; }

  const FusionConfig& config() const { return config_; }
  // Throws vidfuse::Error naming the tensor and the mismatch if `input` does not fit the config.
  void check_input(const FusionInput& input) const;

  StreamEmbed semantic_embed{nullptr}, motion_embed{nullptr};
  torch::nn::ModuleList layers{nullptr};
  AttentivePooler pool{nullptr}, semantic_pool{nullptr}, motion_pool{nullptr};
  torch::nn::LayerNorm head_norm{nullptr};
  torch::nn::Linear classifier{nullptr};

 private:
  torch::Tensor semantic_tokens(const FusionInput& input);
  torch::Tensor motion_tokens(const FusionInput& input);
  FusionConfig config_;
  std::optional<torch::ScalarType> compute_dtype_;
};
TORCH_MODULE(FusionModel);

// Analytic forward cost per sample (one multiply-add = 2 FLOPs; matrix products and attention
// only — norms, softmax and activations are O(tokens × width) and left out) for inputs of the
// given grids.
struct FusionCost {
  double flops = 0;             // forward FLOPs per sample
  int64_t semantic_tokens = 0;  // after pooling, CLS included
  int64_t motion_tokens = 0;
};
FusionCost fusion_forward_cost(const FusionConfig& config,
                               const std::array<int64_t, 3>& semantic_grid,
                               const std::array<int64_t, 3>& motion_grid, bool with_cls);

}  // namespace vidfuse::models
