// How error messages name a tensor's shape: "[2, 3, 224, 224]", "(absent)" when undefined.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

namespace vidfuse {

std::string shape_text(c10::IntArrayRef sizes);
std::string shape_text(const at::Tensor& t);

}  // namespace vidfuse
