// The compute dtype names every command and the library take ("fp32", "bf16").
#pragma once
#include <c10/core/ScalarType.h>

#include <string>

namespace vidfuse {

// fp32 or bf16; bf16 on a CPU without native bf16 is allowed but warned about (core/runtime.h);
// fp16 is refused (DINOv3 overflows it). Throws vidfuse::Error naming the value.
c10::ScalarType parse_compute_dtype(const std::string& name, const std::string& device = "cpu");

}  // namespace vidfuse
