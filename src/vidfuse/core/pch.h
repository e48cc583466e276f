// Precompiled header shared by every vidfuse target (see CMakeLists.txt).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>
