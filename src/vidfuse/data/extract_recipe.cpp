#include "vidfuse/data/extract_recipe.h"

#include <filesystem>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::data {

io::SamplingSpec ExtractRecipe::default_semantic_sampling() {
  io::SamplingSpec s;
  s.kind = io::SamplingSpec::Kind::Segment;
  s.num_segments = 16;
  return s;
}

io::SamplingSpec ExtractRecipe::default_motion_sampling() {
  io::SamplingSpec s;
  s.kind = io::SamplingSpec::Kind::FixedRate;
  s.fps = 25.0;
  return s;
}

std::string ExtractRecipe::storage_dtype_name(torch::ScalarType dtype) {
  return weights::dtype_name(dtype);
}

nlohmann::json to_json(const ExtractRecipe& r) {
  nlohmann::json j = {{"format", "vidfuse-extract-settings"}};
  j.update(settings::to_json_fields(r));
  return j;
}

ExtractRecipe extract_recipe_from_json(const nlohmann::json& j, const std::string& where) {
  ExtractRecipe r;
  // Not read_fields(): its strict finish() would refuse keys a newer version writes.
  settings::FieldReader reader(j, where);
  r.fields(reader);
  settings::check_fields(r, where);
  return r;
}

std::string extract_recipe_path(const std::string& store_dir) {
  return (std::filesystem::path(store_dir) / "extract.json").string();
}

void write_extract_recipe(const std::string& store_dir, const ExtractRecipe& recipe) {
  write_text_atomically(extract_recipe_path(store_dir), to_json(recipe).dump(2) + "\n");
}

ExtractRecipe read_extract_recipe(const std::string& store_dir) {
  const std::string path = extract_recipe_path(store_dir);
  if (!std::filesystem::exists(path))
    fail_file(path,
              "missing: the store was not written by `vidfuse extract` of this version, so "
              "the extraction settings cannot be reproduced");
  return extract_recipe_from_json(read_json_file(path, "extraction settings"), path);
}

}  // namespace vidfuse::data
