// `vidfuse convert IN OUT.safetensors`: any accepted checkpoint (.pt zip or legacy, .safetensors,
// HF directory) rewritten as one safetensors file, so later runs memory-map instead of unpickling.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/weights/checkpoint.h"
#include "vidfuse/weights/safetensors.h"
#include "vidfuse/weights/state_dict.h"

namespace vidfuse::cli {
namespace {

struct ConvertOptions {
  std::string input, output, dtype = "keep";
};

int run_convert(const ConvertOptions& o) {
  if (std::filesystem::path(o.output).extension() != ".safetensors")
    fail_file(o.output, "output must be a .safetensors file");
  weights::TensorMap state = weights::read_checkpoint(o.input);
  if (state.empty()) fail_file(o.input, "holds no tensors");
  // DataParallel checkpoints name everything "module.<name>"; the .pt reader already strips it,
  // other formats are stripped here.
  const std::string prefix = "module.";
  if (std::all_of(state.begin(), state.end(),
                  [&](const auto& kv) { return kv.first.rfind(prefix, 0) == 0; }))
    state = weights::strip_prefix(state, prefix);

  static const std::map<std::string, torch::ScalarType> dtypes = {
      {"fp32", torch::kFloat32}, {"fp16", torch::kFloat16}, {"bf16", torch::kBFloat16}};
  if (o.dtype != "keep") {
    const torch::ScalarType target = dtypes.at(o.dtype);
    for (auto& [name, t] : state)
      if (t.is_floating_point()) t = t.to(target);
  }

  int64_t params = 0;
  std::map<std::string, int> counts;
  for (const auto& [name, t] : state) {
    params += t.numel();
    ++counts[weights::dtype_name(t.scalar_type())];
  }
  weights::save_safetensors(o.output, state, {{"format", "pt"}});

  std::string dtype_summary;
  for (const auto& [name, n] : counts)
    dtype_summary += (dtype_summary.empty() ? "" : ", ") + name + " x" + std::to_string(n);
  std::cout << "converted " << o.input << " -> " << o.output << ": " << state.size() << " tensors, "
            << params << " parameters (" << dtype_summary << ")\n";
  return 0;
}

VIDFUSE_COMMAND(
    "convert", "Convert a checkpoint (.pt, .safetensors, HF dir) to one .safetensors",
    [](CLI::App& sub) {
      auto o = std::make_shared<ConvertOptions>();
      sub.add_option("input", o->input, "Checkpoint file or HF model directory")->required();
      sub.add_option("output", o->output, "Output .safetensors (written atomically)")->required();
      sub.add_option("--dtype", o->dtype, "Floating-point dtype of the output")
          ->check(CLI::IsMember({"keep", "fp32", "fp16", "bf16"}));
      return [o] { return run_convert(*o); };
    });

}  // namespace
}  // namespace vidfuse::cli
