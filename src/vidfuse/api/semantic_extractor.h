// The semantic stream as a library call: DINOv3 patch features of still images, computed exactly
// as `vidfuse embed` computes them (the command is a thin wrapper over this class). Public API.
//
//   vidfuse::SemanticExtractor dino("/models/dinov3-vitb16-pretrain-lvd1689m");
//   auto f = dino.embed_files({"a.jpg", "b.png"});  // f.patch_tokens [2, 14, 14, 768]
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vidfuse {

struct SemanticExtractorOptions {
  std::string device = "auto";        // auto (a GPU when there is one), cpu, cuda, cuda:N
  std::string dtype = "fp32";         // compute dtype: fp32 or bf16 (fp16 overflows in DINOv3)
  int64_t height = 224, width = 224;  // the HF resize target; multiples of the patch size
  int64_t batch = 8;                  // images per forward
};

struct SemanticFeatures {
  at::Tensor patch_tokens;  // [N, h, w, C] float32, h = height / patch, w = width / patch
  at::Tensor cls;           // [N, C] float32: the normalised CLS token (HF pooler_output)
};

class SemanticExtractor {
 public:
  // `weights`: an HF model folder (config.json + model.safetensors), a checkpoint file, or
  // "builtin" (a small random-weight ViT of DINOv3's topology, for trying things out).
  // Throws vidfuse::Error naming the file when the weights cannot be read.
  explicit SemanticExtractor(const std::string& weights, SemanticExtractorOptions options = {});

  // Images as uint8 RGB tensors [H, W, 3] (any size; each is resized), through the HF DINOv3
  // preprocessing and the model. Results are on the extractor's device. Safe to call from
  // several threads (the forwards take turns; preprocessing overlaps).
  SemanticFeatures operator()(const std::vector<at::Tensor>& images) const;
  // The same for image files (PNG, JPEG, BMP, WebP, ...).
  SemanticFeatures embed_files(const std::vector<std::string>& paths) const;

  int64_t feature_dim() const;  // C: 768 for ViT-B/16
  int64_t patch_size() const;   // 16
  const std::string& device() const;
  const std::string& weights() const;
  const SemanticExtractorOptions& options() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace vidfuse
