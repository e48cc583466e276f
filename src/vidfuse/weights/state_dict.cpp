#include "vidfuse/weights/state_dict.h"

#include <sstream>

#include "vidfuse/core/error.h"
#include "vidfuse/core/shape_text.h"

namespace vidfuse::weights {

TensorMap state_dict_of(const torch::nn::Module& module) {
  TensorMap out;
  for (const auto& p : module.named_parameters(/*recurse=*/true)) out.emplace(p.key(), p.value());
  for (const auto& b : module.named_buffers(/*recurse=*/true)) out.emplace(b.key(), b.value());
  return out;
}

void load_state_dict(torch::nn::Module& module, const TensorMap& state,
                     const LoadOptions& options) {
  const TensorMap destination = state_dict_of(module);
  std::vector<std::string> missing, unexpected, mismatched;
  for (const auto& [name, dst] : destination) {
    auto it = state.find(name);
    if (it == state.end()) {
      missing.push_back(name);
    } else if (it->second.sizes() != dst.sizes()) {
      mismatched.push_back(name + ": checkpoint has " + shape_text(it->second) +
                           ", model expects " + shape_text(dst));
    }
  }
  for (const auto& [name, src] : state)
    if (!destination.count(name)) unexpected.push_back(name);

  const bool fatal =
      !mismatched.empty() || (options.strict && (!missing.empty() || !unexpected.empty()));
  if (fatal) {
    std::ostringstream msg;
    msg << (options.source.empty() ? std::string("state dict") : options.source)
        << ": checkpoint does not fit the model";
    auto list = [&](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      msg << "\n  " << names.size() << " " << what << ":";
      size_t shown = 0;
      for (const auto& n : names) {
        if (++shown > 20) {
          msg << "\n    ... and " << names.size() - 20 << " more";
          break;
        }
        msg << "\n    " << n;
      }
    };
    list("shape mismatch(es)", mismatched);
    list("missing key(s)", missing);
    list("unexpected key(s)", unexpected);
    throw Error(msg.str());
  }

  torch::NoGradGuard no_grad;
  for (const auto& [name, dst] : destination) {
    auto it = state.find(name);
    if (it == state.end()) continue;
    torch::Tensor dst_mut = dst;  // shares storage with the module's tensor
    dst_mut.copy_(it->second.to(dst.device(), dst.scalar_type()));
  }
}

TensorMap strip_prefix(const TensorMap& state, const std::string& prefix) {
  TensorMap out;
  for (const auto& [name, t] : state)
    out.emplace(name.rfind(prefix, 0) == 0 ? name.substr(prefix.size()) : name, t);
  return out;
}

}  // namespace vidfuse::weights
