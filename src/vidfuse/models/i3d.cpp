// InceptionI3d: the whole network in one file (see i3d.h).
#include "vidfuse/models/i3d.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "vidfuse/core/error.h"
#include "vidfuse/core/shape_text.h"
#include "vidfuse/models/i3d_names.h"
#include "vidfuse/weights/checkpoint.h"
#include "vidfuse/weights/state_dict.h"

namespace vidfuse::models {
namespace {

using torch::Tensor;

// The architecture, as in the paper's Figure 3 and piergiaj's VALID_ENDPOINTS.
struct MixedSpec {
  const char* name;
  int64_t in_channels;
  std::array<int64_t, 6> out;  // b0, b1a, b1b, b2a, b2b, b3b
};
constexpr MixedSpec kMixed3[] = {{"Mixed_3b", 192, {64, 96, 128, 16, 32, 32}},
                                 {"Mixed_3c", 256, {128, 128, 192, 32, 96, 64}}};
constexpr MixedSpec kMixed4[] = {{"Mixed_4b", 480, {192, 96, 208, 16, 48, 64}},
                                 {"Mixed_4c", 512, {160, 112, 224, 24, 64, 64}},
                                 {"Mixed_4d", 512, {128, 128, 256, 24, 64, 64}},
                                 {"Mixed_4e", 512, {112, 144, 288, 32, 64, 64}},
                                 {"Mixed_4f", 528, {256, 160, 320, 32, 128, 128}}};
constexpr MixedSpec kMixed5[] = {{"Mixed_5b", 832, {256, 160, 320, 32, 128, 128}},
                                 {"Mixed_5c", 832, {384, 192, 384, 48, 128, 128}}};

// A channel count at `width` (at least 4, so every branch keeps some channels).
int64_t scaled(int64_t channels, double width) {
  if (width == 1.0) return channels;
  return std::max<int64_t>(4, std::lround(channels * width));
}
std::array<int64_t, 6> scaled(const std::array<int64_t, 6>& out, double width) {
  std::array<int64_t, 6> r{};
  for (size_t i = 0; i < 6; ++i) r[i] = scaled(out[i], width);
  return r;
}
// A module's output channels: the concatenation of branches 0, 1b, 2b and 3b.
int64_t mixed_out_channels(const std::array<int64_t, 6>& out) {
  return out[0] + out[2] + out[4] + out[5];
}
constexpr std::array<int64_t, 3> kAvgPool = {2, 7, 7};

using K3 = std::array<int64_t, 3>;
constexpr K3 kPool2a = {1, 3, 3}, kPool2aStride = {1, 2, 2};  // also MaxPool3d_3a_3x3
constexpr K3 kPool4a = {3, 3, 3}, kPool4aStride = {2, 2, 2};
constexpr K3 kPool5a = {2, 2, 2}, kPool5aStride = {2, 2, 2};
constexpr K3 kBranchPool = {3, 3, 3}, kOnes = {1, 1, 1};

// Conv3d with SAME padding: the symmetric part goes to the convolution; only an odd remainder
// (TF puts it after) costs an explicit pad of the input.
Tensor conv3d_same(Tensor x, const Tensor& weight, const Tensor& bias, const K3& kernel,
                   const K3& stride) {
  std::array<int64_t, 3> symmetric{};
  std::vector<int64_t> extra(6, 0);  // constant_pad_nd order: (W, H, T) x (before, after)
  bool asymmetric = false;
  for (int d = 0; d < 3; ++d) {
    const SamePadding p = same_padding(x.size(2 + d), kernel[d], stride[d]);
    symmetric[d] = p.before;
    if (p.after != p.before) {
      extra[2 * (2 - d) + 1] = p.after - p.before;
      asymmetric = true;
    }
  }
  if (asymmetric) x = at::constant_pad_nd(x, extra, 0);
  return at::conv3d(x, weight, bias, stride, symmetric);
}

// The pool along one dimension: out[j] = max over x[j*s - before + t], t < k, within bounds.
Tensor max_pool1d_same(const Tensor& x, int64_t dim, int64_t k, int64_t s) {
  const int64_t n = x.size(dim);
  const SamePadding p = same_padding(n, k, s);
  const int64_t m = (n + p.before + p.after - k) / s + 1;
  // Tap t = before reads x[j*s], in bounds for every j: it seeds the result.
  Tensor out = x.slice(dim, 0, (m - 1) * s + 1, s).clone();
  for (int64_t t = 0; t < k; ++t) {
    if (t == p.before) continue;
    const int64_t offset = t - p.before;  // input index = j*s + offset
    const int64_t j0 = offset < 0 ? (-offset + s - 1) / s : 0;
    const int64_t j1 = std::min(m - 1, (n - 1 - offset) / s);
    if (j1 < j0) continue;
    const int64_t i0 = j0 * s + offset;
    // clamp_min_(Tensor) is an in-place elementwise max that autograd supports on views.
    out.narrow(dim, j0, j1 - j0 + 1).clamp_min_(x.slice(dim, i0, i0 + (j1 - j0) * s + 1, s));
  }
  return out;
}

}  // namespace

SamePadding same_padding(int64_t n, int64_t k, int64_t s) {
  const int64_t total =
      (n % s == 0) ? std::max<int64_t>(k - s, 0) : std::max<int64_t>(k - n % s, 0);
  return {total / 2, total - total / 2};
}

Tensor max_pool3d_same(const Tensor& x, std::array<int64_t, 3> kernel,
                       std::array<int64_t, 3> stride) {
  // Strided dimensions first: they shrink the tensor the other passes read.
  std::array<int, 3> order = {0, 1, 2};
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return stride[a] > stride[b]; });
  Tensor y = x;
  for (int d : order)
    if (kernel[d] > 1 || stride[d] > 1) y = max_pool1d_same(y, 2 + d, kernel[d], stride[d]);
  return y;
}

// ---------------------------------------------------------------------------------------------
// Unit3D

Unit3DImpl::Unit3DImpl(int64_t in_channels, int64_t out_channels, std::array<int64_t, 3> kernel,
                       std::array<int64_t, 3> stride, bool bn_relu, double bn_eps)
    : out_channels_(out_channels), kernel_(kernel), stride_(stride), bn_relu_(bn_relu) {
  conv3d = register_module(
      "conv3d", torch::nn::Conv3d(
                    torch::nn::Conv3dOptions(in_channels, out_channels, torch::IntArrayRef(kernel))
                        .stride(torch::IntArrayRef(stride))
                        .bias(!bn_relu)));
  if (bn_relu)
    bn = register_module(
        "bn", torch::nn::BatchNorm3d(
                  torch::nn::BatchNorm3dOptions(out_channels).eps(bn_eps).momentum(0.01)));
}

Tensor Unit3DImpl::forward(const Tensor& x) {
  if (fused() && !is_training()) {
    Tensor y = conv3d_same(x, fused_weight_, fused_bias_, kernel_, stride_);
    return bn_relu_ ? y.relu_() : y;
  }
  Tensor y = conv3d_same(x, conv3d->weight, conv3d->bias, kernel_, stride_);
  return bn_relu_ ? torch::relu(bn->forward(y)) : y;
}

void Unit3DImpl::fuse(torch::ScalarType dtype) {
  torch::NoGradGuard no_grad;
  // Folded in float64 so that the only rounding is the final cast to the compute dtype.
  Tensor weight = conv3d->weight.to(torch::kFloat64);
  Tensor bias;
  if (bn_relu_) {
    const double eps = bn->options.eps();
    Tensor scale = torch::rsqrt(bn->running_var.to(torch::kFloat64) + eps);
    if (bn->options.affine()) scale = scale * bn->weight.to(torch::kFloat64);
    bias = -bn->running_mean.to(torch::kFloat64) * scale;
    if (bn->options.affine()) bias = bias + bn->bias.to(torch::kFloat64);
    weight = weight * scale.view({-1, 1, 1, 1, 1});
  } else if (conv3d->bias.defined()) {
    bias = conv3d->bias.to(torch::kFloat64);
  }
  fused_weight_ = weight.to(dtype).contiguous();
  fused_bias_ = bias.defined() ? bias.to(dtype) : Tensor();
}

void Unit3DImpl::unfuse() {
  fused_weight_ = Tensor();
  fused_bias_ = Tensor();
}

// ---------------------------------------------------------------------------------------------
// Inception module

InceptionModuleImpl::InceptionModuleImpl(int64_t in_channels, std::array<int64_t, 6> out,
                                         double bn_eps) {
  auto unit = [&](const char* name, int64_t in, int64_t out_channels, const K3& kernel) {
    return register_module(name, Unit3D(in, out_channels, kernel, kOnes, true, bn_eps));
  };
  b0 = unit("b0", in_channels, out[0], {1, 1, 1});
  b1a = unit("b1a", in_channels, out[1], {1, 1, 1});
  b1b = unit("b1b", out[1], out[2], {3, 3, 3});
  b2a = unit("b2a", in_channels, out[3], {1, 1, 1});
  b2b = unit("b2b", out[3], out[4], {3, 3, 3});
  b3b = unit("b3b", in_channels, out[5], {1, 1, 1});
}

int64_t InceptionModuleImpl::out_channels() const {
  return b0->out_channels() + b1b->out_channels() + b2b->out_channels() + b3b->out_channels();
}

Tensor InceptionModuleImpl::forward(const Tensor& x) {
  Tensor pooled = max_pool3d_same(x, kBranchPool, kOnes);
  if (fused_1x1_weight_.defined() && !is_training()) {
    // One GEMM for the three 1x1 units that read x, split afterwards.
    Tensor heads = at::conv3d(x, fused_1x1_weight_, fused_1x1_bias_).relu_();
    auto parts =
        heads.split_with_sizes({b0->out_channels(), b1a->out_channels(), b2a->out_channels()}, 1);
    return torch::cat({parts[0], b1b(parts[1]), b2b(parts[2]), b3b(pooled)}, 1);
  }
  return torch::cat({b0(x), b1b(b1a(x)), b2b(b2a(x)), b3b(pooled)}, 1);
}

void InceptionModuleImpl::fuse(torch::ScalarType dtype) {
  for (auto* unit : {&b0, &b1a, &b1b, &b2a, &b2b, &b3b}) (*unit)->fuse(dtype);
  fused_1x1_weight_ =
      torch::cat({b0->fused_weight(), b1a->fused_weight(), b2a->fused_weight()}, 0).contiguous();
  fused_1x1_bias_ = torch::cat({b0->fused_bias(), b1a->fused_bias(), b2a->fused_bias()}, 0);
}

void InceptionModuleImpl::unfuse() {
  for (auto* unit : {&b0, &b1a, &b1b, &b2a, &b2b, &b3b}) (*unit)->unfuse();
  fused_1x1_weight_ = Tensor();
  fused_1x1_bias_ = Tensor();
}

// ---------------------------------------------------------------------------------------------
// InceptionI3d

InceptionI3dImpl::InceptionI3dImpl(I3DConfig config) : config_(config) {
  if (config.in_channels < 1 || config.num_classes < 1)
    throw Error("I3D config: in_channels and num_classes must be positive (got " +
                std::to_string(config.in_channels) + ", " + std::to_string(config.num_classes) +
                ")");
  if (!(config.width > 0 && config.width <= 1))
    throw Error("I3D config: width must be in (0, 1], got " + std::to_string(config.width));
  const double eps = config.bn_eps, w = config.width;
  const int64_t c1 = scaled(64, w), c2 = scaled(192, w);
  Conv3d_1a_7x7 = register_module(
      "Conv3d_1a_7x7", Unit3D(config.in_channels, c1, K3{7, 7, 7}, K3{2, 2, 2}, true, eps));
  Conv3d_2b_1x1 = register_module("Conv3d_2b_1x1", Unit3D(c1, c1, kOnes, kOnes, true, eps));
  Conv3d_2c_3x3 = register_module("Conv3d_2c_3x3", Unit3D(c1, c2, K3{3, 3, 3}, kOnes, true, eps));
  int64_t channels = c2;  // into the next module
  auto mixed = [&](const MixedSpec& spec) {
    const auto out = scaled(spec.out, w);
    auto m = register_module(spec.name, InceptionModule(channels, out, eps));
    channels = mixed_out_channels(out);
    return m;
  };
  Mixed_3b = mixed(kMixed3[0]);
  Mixed_3c = mixed(kMixed3[1]);
  Mixed_4b = mixed(kMixed4[0]);
  Mixed_4c = mixed(kMixed4[1]);
  Mixed_4d = mixed(kMixed4[2]);
  Mixed_4e = mixed(kMixed4[3]);
  Mixed_4f = mixed(kMixed4[4]);
  Mixed_5b = mixed(kMixed5[0]);
  Mixed_5c = mixed(kMixed5[1]);
  dropout = register_module("dropout", torch::nn::Dropout(config.dropout));
  logits =
      register_module("logits", Unit3D(channels, config.num_classes, kOnes, kOnes, false, eps));
}

int64_t i3d_feature_channels(const I3DConfig& config) {
  return mixed_out_channels(scaled(kMixed5[1].out, config.width));
}

void InceptionI3dImpl::check_input(torch::IntArrayRef sizes) const {
  const bool ok = sizes.size() == 5 && sizes[1] == config_.in_channels &&
                  sizes[2] >= kI3DMinFrames && sizes[3] >= kI3DMinSize && sizes[4] >= kI3DMinSize &&
                  sizes[0] >= 1;
  if (!ok)
    throw Error("I3D input of shape " + shape_text(sizes) + ": expected [B, " +
                std::to_string(config_.in_channels) +
                ", T, H, W] with B >= 1, T >= " + std::to_string(kI3DMinFrames) +
                " frames and H, W >= " + std::to_string(kI3DMinSize) + " pixels");
}

Tensor InceptionI3dImpl::forward_mixed_5c(const Tensor& x) {
  check_input(x.sizes());
  const bool fast = fused_dtype_.has_value() && !is_training();
  const auto dtype = fast ? *fused_dtype_ : Conv3d_1a_7x7->conv3d->weight.scalar_type();
  Tensor h = x.to(dtype).contiguous();
  h = Conv3d_1a_7x7(h);
  h = max_pool3d_same(h, kPool2a, kPool2aStride);
  h = Conv3d_2b_1x1(h);
  h = Conv3d_2c_3x3(h);
  h = max_pool3d_same(h, kPool2a, kPool2aStride);
  h = Mixed_3c(Mixed_3b(h));
  h = max_pool3d_same(h, kPool4a, kPool4aStride);
  h = Mixed_4f(Mixed_4e(Mixed_4d(Mixed_4c(Mixed_4b(h)))));
  h = max_pool3d_same(h, kPool5a, kPool5aStride);
  return Mixed_5c(Mixed_5b(h));
}

I3DOutput InceptionI3dImpl::forward(const Tensor& x) {
  I3DOutput out;
  out.mixed_5c = forward_mixed_5c(x);
  // The head is tiny: it runs in fp32 whatever the backbone's dtype (there is no bf16 CPU
  // avg_pool3d in LibTorch 1.13, and fp32 logits cost nothing).
  const bool fast = fused_dtype_.has_value() && !is_training();
  const auto head_dtype = fast ? torch::kFloat32 : logits->conv3d->weight.scalar_type();
  Tensor pooled = at::avg_pool3d(out.mixed_5c.to(torch::kFloat32), kAvgPool, kOnes);
  out.features = pooled;
  out.logits = logits(dropout(pooled.to(head_dtype))).to(torch::kFloat32);
  out.logits_mean = out.logits.mean({2, 3, 4});
  return out;
}

void InceptionI3dImpl::fuse_for_inference(torch::ScalarType dtype) {
  if (dtype != torch::kFloat32 && dtype != torch::kBFloat16 && dtype != torch::kFloat16 &&
      dtype != torch::kFloat64)
    throw Error("I3D: unsupported compute dtype " + std::string(c10::toString(dtype)));
  for (auto* unit : {&Conv3d_1a_7x7, &Conv3d_2b_1x1, &Conv3d_2c_3x3}) (*unit)->fuse(dtype);
  for (auto* module : {&Mixed_3b, &Mixed_3c, &Mixed_4b, &Mixed_4c, &Mixed_4d, &Mixed_4e, &Mixed_4f,
                       &Mixed_5b, &Mixed_5c})
    (*module)->fuse(dtype);
  logits->fuse(torch::kFloat32);
  fused_dtype_ = dtype;
}

void InceptionI3dImpl::unfuse() {
  for (auto* unit : {&Conv3d_1a_7x7, &Conv3d_2b_1x1, &Conv3d_2c_3x3, &logits}) (*unit)->unfuse();
  for (auto* module : {&Mixed_3b, &Mixed_3c, &Mixed_4b, &Mixed_4c, &Mixed_4d, &Mixed_4e, &Mixed_4f,
                       &Mixed_5b, &Mixed_5c})
    (*module)->unfuse();
  fused_dtype_.reset();
}

// ---------------------------------------------------------------------------------------------
// FLOPs, config inference, loading

double i3d_flops(const I3DConfig& config, int64_t frames, int64_t height, int64_t width) {
  std::array<int64_t, 3> size = {frames, height, width};
  double flops = 0;
  auto conv = [&](int64_t in, int64_t out, const K3& kernel, const K3& stride) {
    for (int d = 0; d < 3; ++d) size[d] = (size[d] + stride[d] - 1) / stride[d];
    flops += 2.0 * in * out * kernel[0] * kernel[1] * kernel[2] * size[0] * size[1] * size[2];
  };
  auto pool = [&](const K3& stride) {
    for (int d = 0; d < 3; ++d) size[d] = (size[d] + stride[d] - 1) / stride[d];
  };
  const double w = config.width;
  const int64_t c1 = scaled(64, w), c2 = scaled(192, w);
  int64_t channels = c2;
  auto mixed = [&](const MixedSpec& spec) {
    const auto o = scaled(spec.out, w);
    const int64_t in_channels = channels;
    for (auto [in, out, k] : {std::tuple{in_channels, o[0], 1},
                              {in_channels, o[1], 1},
                              {o[1], o[2], 3},
                              {in_channels, o[3], 1},
                              {o[3], o[4], 3},
                              {in_channels, o[5], 1}})
      conv(in, out, {k, k, k}, kOnes);
    channels = mixed_out_channels(o);
  };
  conv(config.in_channels, c1, {7, 7, 7}, {2, 2, 2});
  pool(kPool2aStride);
  conv(c1, c1, kOnes, kOnes);
  conv(c1, c2, {3, 3, 3}, kOnes);
  pool(kPool2aStride);
  for (const auto& spec : kMixed3) mixed(spec);
  pool(kPool4aStride);
  for (const auto& spec : kMixed4) mixed(spec);
  pool(kPool5aStride);
  for (const auto& spec : kMixed5) mixed(spec);
  for (int d = 0; d < 3; ++d) size[d] = std::max<int64_t>(size[d] - kAvgPool[d] + 1, 0);
  conv(channels, config.num_classes, kOnes, kOnes);
  return flops;
}

I3DConfig i3d_config_from_state(const weights::TensorMap& state, const std::string& source) {
  auto find = [&](const std::string& key) -> const Tensor& {
    auto it = state.find(key);
    if (it == state.end())
      fail_file(source, "not an I3D state dict (piergiaj naming): missing key '" + key + "'");
    if (it->second.dim() != 5)
      fail_file(source, "I3D key '" + key + "' has shape " + shape_text(it->second.sizes()) +
                            ", expected a 5-D convolution weight");
    return it->second;
  };
  I3DConfig config;
  const Tensor& first = find("Conv3d_1a_7x7.conv3d.weight");
  config.in_channels = first.size(1);
  if (first.size(0) != 64) config.width = first.size(0) / 64.0;  // a narrowed network
  const Tensor& last = find("logits.conv3d.weight");
  config.num_classes = last.size(0);
  return config;
}

InceptionI3d load_i3d(const weights::TensorMap& state, const std::string& source) {
  const weights::TensorMap canonical = canonicalize_i3d_names(state);
  InceptionI3d model(i3d_config_from_state(canonical, source));
  weights::LoadOptions options;
  options.source = source;
  weights::load_state_dict(*model, canonical, options);
  model->eval();
  return model;
}

InceptionI3d load_i3d(const std::string& path) {
  return load_i3d(weights::read_checkpoint(path), path);
}

}  // namespace vidfuse::models
