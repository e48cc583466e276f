#include "vidfuse/api/motion_extractor.h"

#include <torch/torch.h>

#include <mutex>
#include <sstream>

#include "vidfuse/core/compute_dtype.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/stream_inputs.h"
#include "vidfuse/io/video_transforms.h"
#include "vidfuse/models/backbones.h"
#include "vidfuse/models/kinetics400.h"

namespace vidfuse {

struct MotionExtractor::Impl {
  MotionExtractorOptions options;
  torch::Device device{torch::kCPU};
  models::InceptionI3d model{nullptr};
  std::vector<std::string> class_names;
  mutable std::mutex forward_mutex;  // one forward at a time (each uses every core)

  MotionFeatures forward(const torch::Tensor& clip_c_t_h_w) {
    torch::InferenceMode guard;
    const torch::Tensor input = clip_c_t_h_w.unsqueeze(0).to(device);
    std::lock_guard<std::mutex> lock(forward_mutex);
    models::I3DOutput out = model->forward(input);
    return {out.mixed_5c, out.features, out.logits, out.logits_mean};
  }
};

const std::vector<std::string>& kinetics400_class_names() { return models::kinetics400_classes(); }

MotionExtractor::MotionExtractor(const std::string& weights, MotionExtractorOptions options)
    : impl_(std::make_shared<Impl>()) {
  Impl& m = *impl_;
  if (options.crop <= 0 || options.short_side < options.crop)
    throw InvalidArgument(
        "motion extractor: crop must be positive and at most short_side (got crop " +
        std::to_string(options.crop) + ", short_side " + std::to_string(options.short_side) + ")");
  if (!(options.fps > 0)) throw InvalidArgument("motion extractor: fps must be positive");
  if (options.clip < 0)
    throw InvalidArgument("motion extractor: clip must be >= 0 (0 = every frame)");
  m.options = options;
  m.device = torch::Device(resolve_device(options.device).device);
  m.options.device = m.device.str();
  const torch::ScalarType dtype = parse_compute_dtype(options.dtype, m.options.device);
  m.model = models::i3d_from_spec(weights);
  m.model->to(m.device);
  m.model->eval();
  m.model->fuse_for_inference(dtype);
  // A 400-class head of real weights is Kinetics-400's (the built-in network's is random).
  if (weights != models::kBuiltinBackbone && m.model->config().num_classes == 400)
    m.class_names = models::kinetics400_classes();
}

MotionFeatures MotionExtractor::operator()(const at::Tensor& frames) const {
  if (!frames.defined() || frames.dim() != 4 || frames.size(3) != 3 ||
      frames.scalar_type() != torch::kUInt8)
    throw InvalidArgument("motion extractor: the clip must be uint8 RGB frames [T, H, W, 3], got " +
                          (frames.defined() ? std::string(c10::toString(frames.scalar_type())) +
                                                  " " + c10::str(frames.sizes())
                                            : std::string("nothing")));
  if (frames.size(0) == 0 || frames.size(1) == 0 || frames.size(2) == 0)
    throw InvalidArgument("motion extractor: the clip is empty (" + c10::str(frames.sizes()) + ")");
  if (in_channels() != 3)
    throw Error("motion extractor: this I3D reads " + std::to_string(in_channels()) +
                "-channel (flow) input, not RGB frames");
  const torch::Tensor clip =
      io::i3d_transform(frames.cpu(), impl_->options.short_side, impl_->options.crop);
  impl_->model->check_input({1, clip.size(0), clip.size(1), clip.size(2), clip.size(3)});
  return impl_->forward(clip);
}

MotionFeatures MotionExtractor::video(const std::string& path) const {
  if (in_channels() != 3)
    throw Error(
        "motion extractor: this I3D reads flow; compute flow with `vidfuse extract "
        "--streams flow`");
  const MotionExtractorOptions& o = impl_->options;
  data::ExtractRecipe recipe;
  recipe.motion_sampling.fps = o.fps;
  recipe.motion_clip = o.clip;
  recipe.motion_short_side = o.short_side;
  recipe.motion_crop = o.crop;
  const data::StreamInputs in = data::load_stream_inputs(path, recipe, false, true);
  return impl_->forward(in.motion);
}

std::vector<std::vector<ClassScore>> MotionExtractor::top_k(const at::Tensor& logits,
                                                            int64_t k) const {
  if (!logits.defined() || (logits.dim() != 2 && logits.dim() != 5))
    throw InvalidArgument("top_k: logits must be [B, K] or [B, K, T, H, W]");
  torch::Tensor scores = logits.dim() == 5 ? logits.mean({2, 3, 4}) : logits;
  scores = torch::softmax(scores.to(torch::kFloat32).cpu(), 1);
  k = std::max<int64_t>(1, std::min<int64_t>(k, scores.size(1)));
  auto [values, indices] = scores.topk(k, 1);
  std::vector<std::vector<ClassScore>> result(static_cast<size_t>(scores.size(0)));
  for (int64_t b = 0; b < scores.size(0); ++b)
    for (int64_t j = 0; j < k; ++j) {
      const int64_t c = indices[b][j].item<int64_t>();
      const auto& names = impl_->class_names;
      result[b].push_back(
          {c, c < static_cast<int64_t>(names.size()) ? names[c] : "class " + std::to_string(c),
           values[b][j].item<double>()});
    }
  return result;
}

int64_t MotionExtractor::feature_dim() const {
  return models::i3d_feature_channels(impl_->model->config());
}
int64_t MotionExtractor::num_classes() const { return impl_->model->config().num_classes; }
int64_t MotionExtractor::in_channels() const { return impl_->model->config().in_channels; }
const std::vector<std::string>& MotionExtractor::class_names() const { return impl_->class_names; }
const std::string& MotionExtractor::device() const { return impl_->options.device; }

}  // namespace vidfuse
