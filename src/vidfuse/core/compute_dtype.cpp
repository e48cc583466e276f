#include "vidfuse/core/compute_dtype.h"

#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"

namespace vidfuse {

c10::ScalarType parse_compute_dtype(const std::string& name, const std::string& device) {
  if (name == "fp32" || name == "float32") return c10::kFloat;
  if (name == "bf16" || name == "bfloat16") {
    warn_if_bf16_is_emulated(true, device);
    return c10::kBFloat16;
  }
  if (name == "fp16" || name == "float16")
    throw Error("dtype fp16 is refused: DINOv3 activations overflow fp16; use bf16 or fp32");
  throw Error("unknown dtype '" + name + "' (fp32 or bf16)");
}

}  // namespace vidfuse
