// `vidfuse info PATH`: what a checkpoint or model directory holds and which architecture it fits.
#include <filesystem>
#include <iostream>
#include <map>

#include "command.h"
#include "i3d_commands.h"
#include "vidfuse/models/dinov3.h"
#include "vidfuse/weights/checkpoint.h"

namespace vidfuse::cli {
namespace {

void print_dtype_summary(const weights::TensorMap& state) {
  std::map<std::string, std::pair<int64_t, int64_t>> by_dtype;  // dtype -> (tensors, elements)
  for (const auto& [name, t] : state) {
    auto& e = by_dtype[c10::toString(t.scalar_type())];
    e.first += 1;
    e.second += t.numel();
  }
  std::cout << "stored dtypes:";
  for (const auto& [dtype, e] : by_dtype)
    std::cout << "  " << dtype << " (" << e.first << " tensors, " << e.second << " values)";
  std::cout << "\n";
}

int info_dinov3(const std::string& path, const weights::TensorMap& raw) {
  auto model = models::load_dinov3(path);
  const auto& c = model->config();
  std::cout << "architecture: DINOv3 ViT (" << (c.use_gated_mlp ? "gated " : "") << c.hidden_act
            << " MLP)\n"
            << "hidden " << c.hidden_size << ", layers " << c.num_hidden_layers << ", heads "
            << c.num_attention_heads << " (dim " << c.head_dim() << "), MLP " << c.intermediate_size
            << ", patch " << c.patch_size << ", registers " << c.num_register_tokens
            << ", rope_theta " << c.rope_theta << "\n"
            << "parameters: " << model->num_parameters() << " in " << raw.size() << " tensors\n";
  print_dtype_summary(raw);
  std::cout << "outputs at 224x224: " << 1 + c.num_register_tokens + 196 << " tokens of "
            << c.hidden_size << " (patch grid 14x14)\n";
  return 0;
}

int run_info(const std::string& path) {
  weights::TensorMap raw = weights::read_checkpoint(path);
  if (raw.count("embeddings.cls_token") || raw.count("cls_token") || raw.count("module.cls_token"))
    return info_dinov3(path, raw);
  if (looks_like_i3d(raw)) return info_i3d(path);
  int64_t params = 0;
  for (const auto& [n, t] : raw) params += t.numel();
  std::cout << "architecture: unknown (neither DINOv3 nor I3D key names)\n"
            << "tensors: " << raw.size() << ", values: " << params << "\n";
  print_dtype_summary(raw);
  int shown = 0;
  for (const auto& [n, t] : raw) {
    if (++shown > 10) break;
    std::cout << "  " << n << " " << t.sizes() << " " << t.scalar_type() << "\n";
  }
  return 0;
}

VIDFUSE_COMMAND("info",
                "Describe a checkpoint or model directory (architecture, parameters, dtypes)",
                [](CLI::App& sub) {
                  auto path = std::make_shared<std::string>();
                  sub.add_option("path", *path, "Model directory or checkpoint file")->required();
                  return [path] { return run_info(*path); };
                });

}  // namespace
}  // namespace vidfuse::cli
