#include "vidfuse/api/semantic_extractor.h"

#include <torch/torch.h>

#include <mutex>

#include "vidfuse/core/compute_dtype.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/preprocess.h"
#include "vidfuse/models/backbones.h"

namespace vidfuse {

struct SemanticExtractor::Impl {
  std::string weights;
  SemanticExtractorOptions options;
  torch::Device device{torch::kCPU};
  torch::ScalarType dtype = torch::kFloat32;
  models::DinoV3ViT model{nullptr};
  // One forward at a time: the model's fused weights are shared, and each forward already uses
  // every core; callers' preprocessing runs outside the lock.
  mutable std::mutex forward_mutex;
};

SemanticExtractor::SemanticExtractor(const std::string& weights, SemanticExtractorOptions options)
    : impl_(std::make_shared<Impl>()) {
  Impl& m = *impl_;
  if (options.batch <= 0) throw InvalidArgument("semantic extractor: batch must be positive");
  m.weights = weights;
  m.options = options;
  m.device = torch::Device(resolve_device(options.device).device);
  m.options.device = m.device.str();
  m.dtype = parse_compute_dtype(options.dtype, m.options.device);
  m.model = models::dinov3_from_spec(weights, m.dtype);
  m.model->to(m.device);
  m.model->eval();
  m.model->fuse_for_inference();
  io::check_size_multiple(options.height, options.width, m.model->config().patch_size);
}

SemanticFeatures SemanticExtractor::operator()(const std::vector<at::Tensor>& images) const {
  Impl& m = *impl_;
  if (images.empty()) throw InvalidArgument("semantic extractor: no images given (an empty list)");
  torch::InferenceMode guard;
  std::vector<torch::Tensor> cls, patches;
  const size_t batch = static_cast<size_t>(m.options.batch);
  for (size_t start = 0; start < images.size(); start += batch) {
    std::vector<torch::Tensor> pixels;
    for (size_t i = start; i < std::min(images.size(), start + batch); ++i) {
      const at::Tensor& image = images[i];
      if (!image.defined() || image.dim() != 3 || image.size(2) != 3 ||
          image.scalar_type() != torch::kUInt8)
        throw InvalidArgument("semantic extractor: image " + std::to_string(i) +
                              " must be a uint8 RGB array [H, W, 3], got " +
                              (image.defined() ? std::string(c10::toString(image.scalar_type())) +
                                                     " " + c10::str(image.sizes())
                                               : std::string("nothing")));
      if (image.size(0) == 0 || image.size(1) == 0)
        throw InvalidArgument("semantic extractor: image " + std::to_string(i) + " is empty (" +
                              c10::str(image.sizes()) + ")");
      pixels.push_back(io::dinov3_preprocess(image.cpu(), m.options.height, m.options.width));
    }
    const torch::Tensor input = torch::cat(pixels).to(m.device, m.dtype);
    std::lock_guard<std::mutex> lock(m.forward_mutex);
    models::DinoV3Output out = m.model->forward(input);
    cls.push_back(out.pooler_output.to(torch::kFloat32));
    patches.push_back(out.patch_tokens.to(torch::kFloat32));
  }
  return {torch::cat(patches), torch::cat(cls)};
}

SemanticFeatures SemanticExtractor::embed_files(const std::vector<std::string>& paths) const {
  if (paths.empty())
    throw InvalidArgument("semantic extractor: no image files given (an empty list)");
  std::vector<at::Tensor> images;
  images.reserve(paths.size());
  for (const auto& path : paths) images.push_back(io::read_image_rgb(path));
  return (*this)(images);
}

int64_t SemanticExtractor::feature_dim() const { return impl_->model->config().hidden_size; }
int64_t SemanticExtractor::patch_size() const { return impl_->model->config().patch_size; }
const std::string& SemanticExtractor::device() const { return impl_->options.device; }
const std::string& SemanticExtractor::weights() const { return impl_->weights; }
const SemanticExtractorOptions& SemanticExtractor::options() const { return impl_->options; }

}  // namespace vidfuse
