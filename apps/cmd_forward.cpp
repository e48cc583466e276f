// `vidfuse forward --model PATH --input IN.safetensors --output OUT.safetensors [--dtype
// fp32|bf16]`: one tensor file in, the model's outputs out (contract in docs/design.md).
#include <chrono>
#include <filesystem>
#include <iostream>

#include "command.h"
#include "dtype_option.h"
#include "i3d_commands.h"
#include "model_kind.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/models/dinov3.h"
#include "vidfuse/weights/checkpoint.h"

namespace vidfuse::cli {
namespace {

struct ForwardArgs {
  std::string model, input, output, dtype = "fp32", device = "auto";
  std::vector<int64_t> layers;
};

int forward_dinov3(const ForwardArgs& a) {
  const torch::Device device(announce_device(a.device, "forward"));
  const torch::ScalarType dtype = parse_compute_dtype(a.dtype, device.str());
  auto model = models::load_dinov3(a.model, dtype);
  model->to(device);
  model->fuse_for_inference();
  weights::SafetensorsFile in(a.input);
  if (!in.contains("pixel_values"))
    fail_file(a.input, "has no tensor 'pixel_values' (DINOv3 reads pixel_values [B,3,H,W])");
  try {  // the shape is checked before anything is computed, and the error names the file
    model->check_input(in.info("pixel_values").shape);
  } catch (const Error& e) {
    fail_file(a.input, e.what());
  }
  torch::Tensor x = in.get("pixel_values").to(device, dtype);
  torch::InferenceMode guard;
  const auto start = std::chrono::steady_clock::now();
  models::DinoV3Output out = model->forward(x, a.layers);
  const double secs =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  weights::TensorMap result = {
      {"last_hidden_state", out.last_hidden_state.to(torch::kFloat32).cpu()},
      {"pooler_output", out.pooler_output.to(torch::kFloat32).cpu()},
      {"patch_tokens", out.patch_tokens.to(torch::kFloat32).cpu()}};
  for (size_t i = 0; i < out.intermediate.size(); ++i)
    result["layer_" + std::to_string(a.layers[i])] = out.intermediate[i].to(torch::kFloat32).cpu();
  weights::save_safetensors(a.output, result,
                            {{"model", a.model}, {"dtype", a.dtype}, {"format", "pt"}});
  std::cerr << "forward: " << x.sizes() << " -> last_hidden_state " << out.last_hidden_state.sizes()
            << " in " << secs << " s, wrote " << a.output << "\n";
  return 0;
}

int run_forward(const ForwardArgs& a) {
  if (is_i3d_checkpoint(a.model)) {
    if (!a.layers.empty()) throw Error("--layers applies to DINOv3 models only");
    return forward_i3d(a.model, a.input, a.output, a.dtype, announce_device(a.device, "forward"));
  }
  return forward_dinov3(a);
}

VIDFUSE_COMMAND(
    "forward", "Run a model (DINOv3 or I3D) on a tensor from a safetensors file",
    [](CLI::App& sub) {
      auto a = std::make_shared<ForwardArgs>();
      sub.add_option("--model", a->model, "Model directory or checkpoint")->required();
      sub.add_option("--input", a->input,
                     "safetensors with pixel_values [B,3,H,W] (DINOv3) or input "
                     "[B,C,T,H,W] (I3D)")
          ->required();
      sub.add_option("--output", a->output, "Output safetensors")->required();
      sub.add_option("--dtype", a->dtype, "Compute dtype: fp32 or bf16")->capture_default_str();
      sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          ->capture_default_str();
      sub.add_option("--layers", a->layers,
                     "DINOv3: also write these layers' normalised outputs "
                     "(layer_N; negative counts from the end)");
      return [a] { return run_forward(*a); };
    });

}  // namespace
}  // namespace vidfuse::cli
