// DINOv3 ViT — the semantic stream. A faithful C++ port of Hugging Face's `DINOv3ViTModel` (eager
// path): [CLS, registers, patches] tokens, 2-D RoPE on patch tokens, pre-norm blocks with layer
// scale, plain or gated (SwiGLU) MLP, final LayerNorm. Parameter names equal the HF checkpoint
// keys.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "vidfuse/core/linear.h"
#include "vidfuse/models/dinov3_config.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::models {

struct DinoV3Output {
  torch::Tensor last_hidden_state;  // [B, 1 + R + P, C], after the final norm
  torch::Tensor pooler_output;      // [B, C], the normalised CLS token
  torch::Tensor patch_tokens;       // [B, h, w, C]
  // Outputs of the requested layers, normalised by the final norm (as the original
  // get_intermediate_layers), each [B, 1 + R + P, C], in the order requested.
  std::vector<torch::Tensor> intermediate;
};

class DinoV3EmbeddingsImpl : public torch::nn::Module {
 public:
  explicit DinoV3EmbeddingsImpl(const DinoV3Config& config);
  torch::Tensor forward(const torch::Tensor& pixel_values);  // -> [B, 1 + R + P, C]

  torch::Tensor cls_token, mask_token, register_tokens;
  torch::nn::Conv2d patch_embeddings{nullptr};
};
TORCH_MODULE(DinoV3Embeddings);

// cos/sin tables [P, head_dim] for an h x w patch grid.
std::pair<torch::Tensor, torch::Tensor> dinov3_rope_tables(int64_t h, int64_t w, int64_t head_dim,
                                                           double theta,
                                                           const torch::TensorOptions& options);

class DinoV3AttentionImpl : public torch::nn::Module {
 public:
  explicit DinoV3AttentionImpl(const DinoV3Config& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t num_heads_, head_dim_;
};
TORCH_MODULE(DinoV3Attention);

class DinoV3LayerScaleImpl : public torch::nn::Module {
 public:
  DinoV3LayerScaleImpl(int64_t dim, double init);
  torch::Tensor forward(const torch::Tensor& x) { return x * lambda1; }
  torch::Tensor lambda1;
};
TORCH_MODULE(DinoV3LayerScale);

class DinoV3MLPImpl : public torch::nn::Module {
 public:
  explicit DinoV3MLPImpl(const DinoV3Config& config);
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  std::string act_;
};
TORCH_MODULE(DinoV3MLP);

class DinoV3LayerImpl : public torch::nn::Module {
 public:
  explicit DinoV3LayerImpl(const DinoV3Config& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  DinoV3Attention attention{nullptr};
  DinoV3LayerScale layer_scale1{nullptr}, layer_scale2{nullptr};
  DinoV3MLP mlp{nullptr};
};
TORCH_MODULE(DinoV3Layer);

// The kernels of the fused inference path's linear layers: LibTorch's (PackedLinear, with bias,
// activation and residual adds as passes of their own), or FusedLinear with those fused into the
// epilogue, on oneDNN's matmul primitives or on vidfuse's own GEMM (core/cpu_gemm.h). The default
// follows measurements per CPU (dinov3.cpp); VIDFUSE_DINOV3_KERNELS=torch|onednn|vidfuse forces
// one (read when fuse_for_inference runs).
enum class DinoV3Kernels { Torch, Onednn, Vidfuse };
DinoV3Kernels dinov3_kernels(torch::ScalarType dtype, torch::Device device);
const char* dinov3_kernels_name(DinoV3Kernels kernels);
// The GEMM kernel behind a fused-epilogue set (Onednn or Vidfuse).
GemmKernel dinov3_gemm_kernel(DinoV3Kernels kernels);
// The activation the MLP's fused epilogue applies for this config's hidden_act.
onednn::Act dinov3_mlp_act(const DinoV3Config& config);

class DinoV3ViTImpl : public torch::nn::Module {
 public:
  explicit DinoV3ViTImpl(const DinoV3Config& config);

  // pixel_values [B, C, H, W]; H and W are floored to multiples of the patch size.
  // `intermediate_layers` are layer indices (negative counts from the end).
  DinoV3Output forward(const torch::Tensor& pixel_values,
                       const std::vector<int64_t>& intermediate_layers = {});
  // Throws vidfuse::Error naming the shape unless `sizes` is [B >= 1, C, H >= patch, W >= patch];
  // forward() checks it before any kernel runs.
  void check_input(torch::IntArrayRef sizes) const;

  // Inference fast path for a frozen model: one fused q|k|v GEMM with the attention scale folded
  // into q, and the layer scales folded into o_proj and down_proj. Call again after changing
  // weights. The plain path (used whenever this was not called, or gradients are needed) stays
  // available.
  void fuse_for_inference();
  void unfuse() { fused_.clear(); }
  bool fused() const { return !fused_.empty(); }
  // The kernels fuse_for_inference chose (Torch when not fused).
  DinoV3Kernels kernels() const { return fused() ? kernels_ : DinoV3Kernels::Torch; }

  const DinoV3Config& config() const { return config_; }
  int64_t num_parameters() const;

  DinoV3Embeddings embeddings{nullptr};
  torch::nn::ModuleList layer{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  struct FusedLayer {
    PackedLinear qkv, o, up, gate, down;  // DinoV3Kernels::Torch
    // DinoV3Kernels::Onednn and Vidfuse: bias + activation fused into up (gate: activation, then
    // the product with up), the residual add into o and down.
    FusedLinear dqkv, do_, dup, dgate, ddown;
  };
  // One layer on the residual stream x [B*N, C], updated in place.
  void fused_layer_forward_(const FusedLayer& f, const DinoV3Layer& l, torch::Tensor& x,
                            int64_t batch, const torch::Tensor& cos, const torch::Tensor& sin);

  DinoV3Config config_;
  std::vector<FusedLayer> fused_;
  DinoV3Kernels kernels_ = DinoV3Kernels::Torch;
};
TORCH_MODULE(DinoV3ViT);

// Average-pools a patch grid [N,h,w,C] over pool×pool cells → [N,ceil(h/pool),ceil(w/pool),C]; a
// ragged last row/column averages the cells it has. pool 1 returns the grid unchanged. The
// extractor and the integrated VideoModel both shrink the semantic tokens with it, so stored and
// live features agree.
torch::Tensor pool_patch_grid(const torch::Tensor& patch, int64_t pool);

// Maps the original facebookresearch/dinov3 checkpoint naming (blocks.N.attn.qkv fused, ls1.gamma,
// mlp.fc1/fc2 or w1/w2/w3, cls_token, storage_tokens, patch_embed.proj) to HF names, splitting qkv.
// HF-named input is returned unchanged.
weights::TensorMap dinov3_canonical_names(const weights::TensorMap& state);

// A config inferred from tensor shapes (for original checkpoints that come without config.json).
DinoV3Config dinov3_config_from_weights(const weights::TensorMap& hf_state);

// Loads a DINOv3 model from a HF directory (config.json + safetensors, sharded or not) or a single
// checkpoint file (HF or original naming; config inferred). Strict; weights converted to `dtype`.
// fp16 is refused (DINOv3 overflows in fp16).
DinoV3ViT load_dinov3(const std::string& path, torch::ScalarType dtype = torch::kFloat32);

}  // namespace vidfuse::models
