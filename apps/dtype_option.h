// Parsing the `--dtype` option shared by the model commands: the library's parser.
#pragma once
#include "vidfuse/core/compute_dtype.h"

namespace vidfuse::cli {

using vidfuse::parse_compute_dtype;

}  // namespace vidfuse::cli
