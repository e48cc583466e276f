// The extraction settings that decide what a model trained on a store sees (sampling, sizes,
// pooling, backbones), saved as <store>/extract.json. `predict` reads them back so that features
// of a new video are computed exactly the way the training features were.
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "vidfuse/data/extractor.h"

namespace vidfuse::data {

struct ExtractSettings {
  ExtractOptions options;  // only the fields that shape the features are saved
  std::string dinov3;      // backbone specs: a checkpoint path or "builtin"; "" = stream off
  std::string i3d;
  std::string flow_i3d;
};

nlohmann::json to_json(const ExtractSettings& settings);
// Unknown keys are ignored (newer files); wrong types are errors naming `where`.
ExtractSettings extract_settings_from_json(const nlohmann::json& json, const std::string& where);

std::string extract_settings_path(const std::string& store_dir);
void write_extract_settings(const std::string& store_dir, const ExtractSettings& settings);
// Throws vidfuse::Error naming the file when it is missing or malformed.
ExtractSettings read_extract_settings(const std::string& store_dir);

}  // namespace vidfuse::data
