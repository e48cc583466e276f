// I3D (Inflated Inception-v1, Carreira & Zisserman 2017) as in piergiaj/pytorch-i3d `InceptionI3d`:
// the motion stream of vidfuse. Parameter and buffer names follow piergiaj's state dict exactly
// (`Conv3d_1a_7x7.conv3d.weight`, `Mixed_3b.b1a.bn.running_mean`, `logits.conv3d.bias`, ...), so a
// converted checkpoint loads strictly. Other namings are mapped by i3d_names.h.
//
// Inference fast path: `fuse_for_inference(dtype)` folds every BatchNorm into its convolution and
// keeps a copy of the folded weights in the compute dtype (fp32 or bf16); the registered parameters
// are left untouched, so the state dict still round-trips.
#pragma once
#include <torch/torch.h>

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "vidfuse/weights/safetensors.h"

namespace vidfuse::models {

struct I3DConfig {
  int64_t in_channels = 3;  // 3 for RGB, 2 for optical flow (dx, dy)
  int64_t num_classes = 400;
  // piergiaj (and DeepMind's Sonnet model) use 1e-3; v-iashin/video_features uses PyTorch's default
  // 1e-5, which canonicalize_i3d_names() folds into running_var so the canonical eps stays 1e-3.
  double bn_eps = 1e-3;
  double dropout = 0.5;  // before the logits; only active in train()
  // Channel multiplier: 1 is the published network (Mixed_5c has 1024 channels). Smaller values
  // give the same topology with fewer channels, for the built-in demo backbone and quick tests;
  // checkpoints record it implicitly (Conv3d_1a_7x7 has 64 * width filters).
  double width = 1.0;
};

// Channels of Mixed_5c (the tokens and the pooled feature): 1024 at width 1.
int64_t i3d_feature_channels(const I3DConfig& config);

// The smallest input the network accepts: Mixed_5c must be at least [2, 7, 7] for the average pool.
inline constexpr int64_t kI3DMinFrames = 9;
inline constexpr int64_t kI3DMinSize = 193;

// TensorFlow "SAME" padding of one dimension of size n for kernel k and stride s: the output has
// ceil(n / s) elements and any odd padding goes after.
struct SamePadding {
  int64_t before = 0, after = 0;
};
SamePadding same_padding(int64_t n, int64_t k, int64_t s);

// Conv3d (no bias) -> BatchNorm3d -> ReLU with SAME padding computed from the input at run time;
// the logits unit is a plain Conv3d with bias.
class Unit3DImpl : public torch::nn::Module {
 public:
  Unit3DImpl(int64_t in_channels, int64_t out_channels, std::array<int64_t, 3> kernel,
             std::array<int64_t, 3> stride = {1, 1, 1}, bool bn_relu = true, double bn_eps = 1e-3);

  torch::Tensor forward(const torch::Tensor& x);

  // Folds BatchNorm into the convolution (weight * gamma / sqrt(var + eps), bias beta - mean * ...)
  // and stores the result in `dtype`; forward() in eval mode then runs conv + bias + ReLU.
  void fuse(torch::ScalarType dtype);
  void unfuse();
  bool fused() const { return fused_weight_.defined(); }
  const torch::Tensor& fused_weight() const { return fused_weight_; }
  const torch::Tensor& fused_bias() const { return fused_bias_; }

  int64_t out_channels() const { return out_channels_; }
  const std::array<int64_t, 3>& kernel() const { return kernel_; }
  const std::array<int64_t, 3>& stride() const { return stride_; }

  torch::nn::Conv3d conv3d{nullptr};
  torch::nn::BatchNorm3d bn{nullptr};

 private:
  int64_t out_channels_;
  std::array<int64_t, 3> kernel_, stride_;
  bool bn_relu_;
  torch::Tensor fused_weight_, fused_bias_;
};
TORCH_MODULE(Unit3D);

// Inception module: b0 (1x1) | b1a (1x1) -> b1b (3x3x3) | b2a (1x1) -> b2b (3x3x3) |
// max-pool 3x3x3 -> b3b (1x1), concatenated along channels in that order.
class InceptionModuleImpl : public torch::nn::Module {
 public:
  // out = [b0, b1a, b1b, b2a, b2b, b3b] output channels.
  InceptionModuleImpl(int64_t in_channels, std::array<int64_t, 6> out, double bn_eps);
  torch::Tensor forward(const torch::Tensor& x);
  void fuse(torch::ScalarType dtype);
  void unfuse();
  int64_t out_channels() const;

  Unit3D b0{nullptr}, b1a{nullptr}, b1b{nullptr}, b2a{nullptr}, b2b{nullptr}, b3b{nullptr};

 private:
  // The three 1x1 units reading the module input (b0, b1a, b2a) run as one convolution when fused.
  torch::Tensor fused_1x1_weight_, fused_1x1_bias_;
};
TORCH_MODULE(InceptionModule);

// Every endpoint of one forward pass.
struct I3DOutput {
  torch::Tensor mixed_5c;  // [B, 1024, T5, H5, W5], T5 = ceil(T/8), H5 = ceil(H/32)
  torch::Tensor features;  // [B, 1024, T5-1, H5-6, W5-6]: the AvgPool3d([2,7,7], stride 1) output
  torch::Tensor logits;    // [B, K, T5-1, H5-6, W5-6], not squeezed
  torch::Tensor logits_mean;  // [B, K]: logits averaged over time (and space, 1x1 for 224 px)
};

class InceptionI3dImpl : public torch::nn::Module {
 public:
  explicit InceptionI3dImpl(I3DConfig config = {});

  // x: [B, C, T, H, W] in any floating dtype. Computes in the fused dtype when fused (and in
  // eval mode), otherwise in the parameters' dtype. Outputs are float32, except mixed_5c, which
  // is in the compute dtype. Throws vidfuse::Error on a wrong rank, channel count or too small
  // clip.
  I3DOutput forward(const torch::Tensor& x);
  // Only the backbone, up to and including Mixed_5c.
  torch::Tensor forward_mixed_5c(const torch::Tensor& x);

  // Folds BatchNorm into the convolutions for inference in `dtype` (kFloat32 or kBFloat16) on the
  // parameters' current device. Call again after loading other weights or moving the module.
  void fuse_for_inference(torch::ScalarType dtype = torch::kFloat32);
  void unfuse();
  bool fused() const { return fused_dtype_.has_value(); }
  std::optional<torch::ScalarType> compute_dtype() const { return fused_dtype_; }

  const I3DConfig& config() const { return config_; }

  // Throws vidfuse::Error naming the shape if `sizes` is not a valid input.
  void check_input(torch::IntArrayRef sizes) const;

  Unit3D Conv3d_1a_7x7{nullptr}, Conv3d_2b_1x1{nullptr}, Conv3d_2c_3x3{nullptr};
  InceptionModule Mixed_3b{nullptr}, Mixed_3c{nullptr}, Mixed_4b{nullptr}, Mixed_4c{nullptr},
      Mixed_4d{nullptr}, Mixed_4e{nullptr}, Mixed_4f{nullptr}, Mixed_5b{nullptr}, Mixed_5c{nullptr};
  torch::nn::Dropout dropout{nullptr};
  Unit3D logits{nullptr};

 private:
  I3DConfig config_;
  std::optional<torch::ScalarType> fused_dtype_;
};
TORCH_MODULE(InceptionI3d);

// Max pooling with TF "SAME" zero padding, ceil_mode off, for inputs >= 0 (post-ReLU), where zero
// padding and -inf padding agree. Separable max over strided views: exact, any dtype and device
// (LibTorch 1.13 has no bf16 CPU max_pool3d, and its fp32 one is slow).
torch::Tensor max_pool3d_same(const torch::Tensor& x, std::array<int64_t, 3> kernel,
                              std::array<int64_t, 3> stride);

// Multiply-accumulate count x 2 of every convolution for an input of [T, H, W] (the usual
// "GFLOP" figure: about 222e9 for 64x224x224 with 400 classes).
double i3d_flops(const I3DConfig& config, int64_t frames, int64_t height, int64_t width);

// The config a canonical (piergiaj-named) state dict was made for: in_channels from
// Conv3d_1a_7x7.conv3d.weight, num_classes from logits.conv3d.weight. Throws vidfuse::Error naming
// `source` if either is missing or malformed.
I3DConfig i3d_config_from_state(const weights::TensorMap& state, const std::string& source);

// Builds the model for a state dict in any accepted naming (see i3d_names.h) and loads it
// strictly, in eval mode. Errors name `source`, the key, and both shapes.
InceptionI3d load_i3d(const weights::TensorMap& state, const std::string& source);
// Reads any checkpoint format weights::read_checkpoint accepts.
InceptionI3d load_i3d(const std::string& path);

}  // namespace vidfuse::models
