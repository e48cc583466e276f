// `vidfuse i3d-predict --model FILE VIDEO...`: the classes an I3D checkpoint's own head gives each
// video (Kinetics-400's names for a 400-class head), as video_features' `show_pred` prints them.
// The video is sampled and preprocessed as the motion stream of `vidfuse extract`.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "prediction_output.h"
#include "vidfuse/api/motion_extractor.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"

namespace {

using namespace vidfuse;

struct I3DPredictArgs {
  std::string model, dtype = "fp32", device = "auto";
  std::vector<std::string> videos;
  int64_t top_k = 5;
  bool json = false;
};

int run_i3d_predict(const I3DPredictArgs& a) {
  MotionExtractorOptions options;
  options.device = announce_device(a.device, "i3d-predict");
  options.dtype = a.dtype;
  const MotionExtractor i3d(a.model, options);
  if (i3d.class_names().empty())
    std::cerr << "i3d-predict: " << a.model << " has a " << i3d.num_classes()
              << "-class head, not Kinetics-400's: classes are shown by index\n";
  int status = 0;
  for (const auto& video : a.videos) {
    std::vector<ClassScore> top;
    std::string error;
    try {
      top = i3d.top_k(i3d.video(video).logits, a.top_k).at(0);
    } catch (const Error& e) {
      error = e.what();
      status = 1;
    }
    cli::print_prediction(video, top, error, a.json);
  }
  return status;
}

}  // namespace

VIDFUSE_COMMAND(
    "i3d-predict", "Kinetics-400 classes of videos from an I3D checkpoint's own head",
    [](CLI::App& sub) {
      auto a = std::make_shared<I3DPredictArgs>();
      sub.add_option("VIDEO", a->videos, "Video files")->required();
      sub.add_option("--model", a->model, "I3D checkpoint (.pt or .safetensors)")->required();
      sub.add_option("--top-k", a->top_k, "Classes per video")->capture_default_str();
      sub.add_option("--dtype", a->dtype, "fp32 or bf16")->capture_default_str();
      sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          ->capture_default_str();
      sub.add_flag("--json", a->json, "One JSON object per video");
      return [a] { return run_i3d_predict(*a); };
    });
