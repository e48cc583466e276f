// The integrated video classifier: preprocessed frames in, logits out, in one module whose
// parameters are `dinov3.*`, `i3d.*` and `fusion.*`. It computes exactly what `vidfuse extract`
// stores and the fusion model reads, so a fusion model trained on a feature store and one trained
// from videos are interchangeable here.
//
//   semantic frames [B,Ts,3,H,W] ─► DINOv3 ─► patch grid (k×k pooled) [B,Ts,h,w,Cs] + CLS [B,Ts,Cs]
//   ─┐ motion clip     [B,3,T,H,W]  ─► I3D    ─► Mixed_5c [B,Cm,T',H',W']
//   ──────────────────────────────┴─► FusionModel ─► logits [B,K]
//
// Backbones are frozen by default: no gradients, eval mode whatever train() says, run under
// NoGradGuard (and on the fused inference paths). set_backbones_trainable(true) fine-tunes them.
#pragma once
#include <torch/torch.h>

#include "vidfuse/models/dinov3.h"
#include "vidfuse/models/fusion.h"
#include "vidfuse/models/i3d.h"

namespace vidfuse::models {

// One batch of videos as the backbones eat them (data::load_stream_inputs makes one video's).
// A stream the model does not use may be undefined.
struct VideoBatch {
  torch::Tensor semantic;  // [B, Ts, 3, H, W], io::dinov3_transform output per video
  torch::Tensor motion;    // [B, 3, T, H, W], io::i3d_transform output per video

  int64_t batch_size() const;
};

// The fusion model's inputs from the backbones, computed the way the extractor stores them
// (float32, on the backbones' device; before any storage rounding). A null backbone leaves its
// stream undefined. Gradients flow when grad mode is on and the backbones need them; the caller
// decides (VideoModel adds a NoGradGuard for frozen backbones).
FusionInput backbone_features(DinoV3ViT& dinov3, InceptionI3d& i3d, const VideoBatch& batch,
                              int64_t pool = 1);

class VideoModelImpl : public torch::nn::Module {
 public:
  // `dinov3` or `i3d` may be null when `fusion`'s arch does not read that stream. `pool` is the
  // patch-grid pooling the fusion model was trained with (ExtractRecipe::pool).
  VideoModelImpl(DinoV3ViT dinov3, InceptionI3d i3d, FusionModel fusion, int64_t pool = 1);

  torch::Tensor forward(const VideoBatch& batch);  // logits [B, K]
  FusionInput features(const VideoBatch& batch);   // what fusion reads

  // Frozen (false, the default): backbone parameters have requires_grad false, the backbones stay
  // in eval mode and run without autograd on their fused fast paths. Trainable (true): fused
  // paths are dropped (they hold weight copies gradients would not reach), requires_grad is set,
  // and the backbones follow train()/eval() with one exception: I3D's BatchNorm layers stay in
  // eval mode, normalising with the pretrained running statistics and never updating them,
  // because the few clips of a video batch give statistics too noisy to replace ImageNet/Kinetics
  // ones (the usual "frozen BN" fine-tuning). DINOv3 has no dropout or batch statistics; I3D's
  // dropout sits before its logits, which this model does not use.
  void set_backbones_trainable(bool trainable);
  bool backbones_trainable() const { return trainable_; }

  void train(bool on = true) override;

  int64_t pool() const { return pool_; }

  DinoV3ViT dinov3{nullptr};
  InceptionI3d i3d{nullptr};
  FusionModel fusion{nullptr};

 private:
  void apply_modes();
  int64_t pool_;
  bool trainable_ = false;
};
TORCH_MODULE(VideoModel);

}  // namespace vidfuse::models
