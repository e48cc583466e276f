#include "i3d_commands.h"

#include <chrono>
#include <iostream>
#include <map>
#include <set>

#include "dtype_option.h"
#include "vidfuse/core/error.h"
#include "vidfuse/models/i3d.h"
#include "vidfuse/models/i3d_names.h"
#include "vidfuse/weights/checkpoint.h"

namespace vidfuse::cli {

bool looks_like_i3d(const weights::TensorMap& state) {
  return models::detect_i3d_naming(state) != models::I3DNaming::kUnknown;
}

int forward_i3d(const std::string& model_path, const std::string& input, const std::string& output,
                const std::string& dtype, const std::string& device) {
  const torch::ScalarType compute = parse_compute_dtype(dtype, device);
  models::InceptionI3d model = models::load_i3d(model_path);
  model->to(torch::Device(device));
  model->fuse_for_inference(compute);

  weights::SafetensorsFile file(input);
  if (!file.contains("input")) fail_file(input, "has no tensor named 'input' ([B, C, T, H, W])");
  const torch::Tensor x = file.get("input");
  if (!x.is_floating_point()) fail_file(input, "tensor 'input' must be floating point");
  try {
    model->check_input(x.sizes());
  } catch (const Error& e) {
    fail_file(input, e.what());
  }

  const auto start = std::chrono::steady_clock::now();
  models::I3DOutput out;
  {
    torch::InferenceMode guard;
    out = model->forward(x.to(torch::Device(device)));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  weights::save_safetensors(output,
                            {{"mixed_5c", out.mixed_5c.to(torch::kFloat32).cpu()},
                             {"features", out.features.to(torch::kFloat32).cpu()},
                             {"logits", out.logits.to(torch::kFloat32).cpu()}},
                            {{"model", model_path}, {"dtype", dtype}});
  std::cerr << "i3d forward (" << dtype << "): " << x.sizes() << " -> mixed_5c "
            << out.mixed_5c.sizes() << ", logits " << out.logits.sizes() << " in " << seconds
            << " s; wrote " << output << "\n";
  return 0;
}

int info_i3d(const std::string& path) {
  const weights::TensorMap state = weights::read_checkpoint(path);
  const models::I3DNaming naming = models::detect_i3d_naming(state);
  if (naming == models::I3DNaming::kUnknown)
    fail_file(path, "not an I3D checkpoint (no Conv3d_1a_7x7 / conv3d_1a_7x7 convolution)");
  const weights::TensorMap canonical = models::canonicalize_i3d_names(state);
  const models::I3DConfig config = models::i3d_config_from_state(canonical, path);
  models::load_i3d(state, path);  // a strict load: every key present, every shape right

  int64_t parameters = 0, buffers = 0;
  std::map<std::string, int> dtypes;
  std::map<std::string, int> groups;  // top-level modules
  for (const auto& [key, tensor] : state) {
    const bool is_buffer = key.find("running_") != std::string::npos ||
                           key.find("num_batches_tracked") != std::string::npos;
    (is_buffer ? buffers : parameters) += tensor.numel();
    ++dtypes[weights::dtype_name(tensor.scalar_type())];
  }
  for (const auto& [key, tensor] : canonical) ++groups[key.substr(0, key.find('.'))];

  std::cout << "architecture: InceptionI3d (Inflated Inception-v1, piergiaj/pytorch-i3d)\n"
            << "naming:       " << models::i3d_naming_name(naming) << "\n"
            << "in_channels:  " << config.in_channels
            << (config.in_channels == 3   ? " (RGB)"
                : config.in_channels == 2 ? " (flow)"
                                          : "")
            << "\n"
            << "classes:      " << config.num_classes << "\n"
            << "parameters:   " << parameters << " (+" << buffers << " BatchNorm statistics)\n"
            << "dtypes:      ";
  for (const auto& [name, count] : dtypes) std::cout << " " << name << " x" << count;
  std::cout << "\nkeys:         " << state.size() << " tensors in " << groups.size() << " modules:";
  for (const auto& [group, count] : groups) std::cout << " " << group << "(" << count << ")";
  std::cout << "\nendpoints:    mixed_5c [B,1024,ceil(T/8),ceil(H/32),ceil(W/32)], features "
               "(AvgPool3d [2,7,7]), logits [B,"
            << config.num_classes << ",T',H',W']\n"
            << "min input:    [B," << config.in_channels << "," << models::kI3DMinFrames << ","
            << models::kI3DMinSize << "," << models::kI3DMinSize << "]\n";
  return 0;
}

}  // namespace vidfuse::cli
