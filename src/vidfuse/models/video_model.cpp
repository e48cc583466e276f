#include "vidfuse/models/video_model.h"

#include "vidfuse/core/error.h"

namespace vidfuse::models {

int64_t VideoBatch::batch_size() const {
  if (semantic.defined()) return semantic.size(0);
  if (motion.defined()) return motion.size(0);
  return 0;
}

FusionInput backbone_features(DinoV3ViT& dinov3, InceptionI3d& i3d, const VideoBatch& batch,
                              int64_t pool) {
  FusionInput out;
  if (!dinov3.is_empty()) {
    const torch::Tensor& x = batch.semantic;
    if (!x.defined() || x.dim() != 5 || x.size(2) != 3)
      throw Error("VideoModel: semantic frames must be [B, Ts, 3, H, W], got " +
                  (x.defined() ? c10::str(x.sizes()) : std::string("none")));
    const int64_t B = x.size(0), T = x.size(1);
    const auto param = dinov3->parameters().front();
    // Frames of every video in one DINOv3 batch; the model sees single images either way.
    DinoV3Output o = dinov3->forward(
        x.reshape({B * T, 3, x.size(3), x.size(4)}).to(param.device(), param.scalar_type()));
    torch::Tensor grid = pool_patch_grid(o.patch_tokens.to(torch::kFloat32), pool);
    out.semantic = grid.reshape({B, T, grid.size(1), grid.size(2), grid.size(3)});
    out.semantic_cls = o.pooler_output.to(torch::kFloat32).reshape({B, T, -1});
  }
  if (!i3d.is_empty()) {
    const torch::Tensor& x = batch.motion;
    if (!x.defined() || x.dim() != 5)
      throw Error("VideoModel: motion clips must be [B, 3, T, H, W], got " +
                  (x.defined() ? c10::str(x.sizes()) : std::string("none")));
    const auto param = i3d->parameters().front();
    // As the extractor feeds it: a fused I3D takes float32 and casts to its compute dtype itself.
    const bool fast = i3d->fused() && !i3d->is_training();
    out.motion =
        i3d->forward_mixed_5c(x.to(param.device(), fast ? torch::kFloat32 : param.scalar_type()))
            .to(torch::kFloat32);
  }
  return out;
}

VideoModelImpl::VideoModelImpl(DinoV3ViT dinov3_in, InceptionI3d i3d_in, FusionModel fusion_in,
                               int64_t pool)
    : pool_(pool) {
  if (fusion_in.is_empty()) throw Error("VideoModel: no fusion model");
  if (pool < 1) throw Error("VideoModel: pool must be >= 1");
  const FusionArch arch = fusion_in->config().arch;
  if (dinov3_in.is_empty() && arch != FusionArch::kMotion)
    throw Error("VideoModel: the " + arch_name(arch) +
                " model reads the semantic stream: a DINOv3 "
                "backbone is needed");
  if (i3d_in.is_empty() && arch != FusionArch::kSemantic)
    throw Error("VideoModel: the " + arch_name(arch) +
                " model reads the motion stream: an I3D "
                "backbone is needed");
  if (!dinov3_in.is_empty()) dinov3 = register_module("dinov3", dinov3_in);
  if (!i3d_in.is_empty()) i3d = register_module("i3d", i3d_in);
  fusion = register_module("fusion", fusion_in);
  set_backbones_trainable(false);
}

void VideoModelImpl::set_backbones_trainable(bool trainable) {
  trainable_ = trainable;
  if (dinov3)
    for (auto& p : dinov3->parameters()) p.set_requires_grad(trainable);
  if (i3d)
    for (auto& p : i3d->parameters()) p.set_requires_grad(trainable);
  if (trainable) {
    if (dinov3) dinov3->unfuse();
    if (i3d) i3d->unfuse();
  } else {
    // Re-fused from the current weights (they may have been fine-tuned meanwhile). A backbone
    // fused in bf16 by its owner keeps that dtype.
    if (dinov3) dinov3->fuse_for_inference();
    if (i3d) i3d->fuse_for_inference(i3d->compute_dtype().value_or(torch::kFloat32));
  }
  apply_modes();
}

void VideoModelImpl::train(bool on) {
  torch::nn::Module::train(on);
  apply_modes();
}

void VideoModelImpl::apply_modes() {
  if (!trainable_) {
    if (dinov3) dinov3->eval();
    if (i3d) i3d->eval();
    return;
  }
  if (!i3d) return;
  for (auto& m : i3d->modules(/*include_self=*/false))
    if (auto* bn = dynamic_cast<torch::nn::BatchNorm3dImpl*>(m.get())) bn->eval();
}

FusionInput VideoModelImpl::features(const VideoBatch& batch) {
  // Only the streams the fusion arch reads: a backbone kept for another arch costs nothing.
  const FusionArch arch = fusion->config().arch;
  DinoV3ViT sem = arch == FusionArch::kMotion ? DinoV3ViT(nullptr) : dinov3;
  InceptionI3d mot = arch == FusionArch::kSemantic ? InceptionI3d(nullptr) : i3d;
  if (trainable_) return backbone_features(sem, mot, batch, pool_);
  torch::NoGradGuard no_grad;
  return backbone_features(sem, mot, batch, pool_);
}

torch::Tensor VideoModelImpl::forward(const VideoBatch& batch) {
  return fusion->forward(features(batch));
}

}  // namespace vidfuse::models
