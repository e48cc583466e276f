#include "vidfuse/core/shape_text.h"

#include <c10/util/StringUtil.h>

namespace vidfuse {

std::string shape_text(c10::IntArrayRef sizes) { return c10::str(sizes); }

std::string shape_text(const at::Tensor& t) {
  return t.defined() ? shape_text(t.sizes()) : "(absent)";
}

}  // namespace vidfuse
