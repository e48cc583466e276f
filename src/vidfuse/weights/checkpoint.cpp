#include "vidfuse/weights/checkpoint.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/quote.h"
#include "vidfuse/weights/torch_pickle.h"

namespace vidfuse::weights {

namespace fs = std::filesystem;

TensorMap read_hf_directory(const std::string& dir) {
  const fs::path root(dir);
  const fs::path single = root / "model.safetensors";
  const fs::path index = root / "model.safetensors.index.json";
  if (fs::exists(single)) return load_safetensors(single.string());
  if (!fs::exists(index))
    fail_file(dir, "directory has neither model.safetensors nor model.safetensors.index.json");
  nlohmann::json j = read_json_file(index.string(), "shard index");
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    fail_file(index.string(), "has no \"weight_map\" object");
  std::map<std::string, std::vector<std::string>> by_shard;
  for (auto& [name, shard] : j["weight_map"].items()) {
    if (!shard.is_string())
      fail_file(index.string(), "weight_map[" + quoted_short(name) + "] is not a file name");
    by_shard[shard.get<std::string>()].push_back(name);
  }
  TensorMap out;
  for (const auto& [shard, names] : by_shard) {
    SafetensorsFile file((root / shard).string());
    for (const auto& name : names) {
      if (!file.contains(name))
        fail_file(file.path(), "index says it holds " + quoted_short(name) + " but it does not");
      out.emplace(name, file.get(name));
    }
  }
  return out;
}

TensorMap read_checkpoint(const std::string& path) {
  if (!fs::exists(path)) fail_file(path, "no such file or directory");
  if (fs::is_directory(path)) return read_hf_directory(path);
  const std::string ext = fs::path(path).extension().string();
  if (ext == ".safetensors") return load_safetensors(path);
  if (ext == ".pt" || ext == ".pth" || ext == ".bin" || ext == ".ckpt" || is_zip_checkpoint(path))
    return read_torch_checkpoint(path);
  // Unknown extension: sniff. A safetensors file starts with a small little-endian length then '{'.
  std::ifstream in(path, std::ios::binary);
  char head[9] = {};
  in.read(head, 9);
  if (in.gcount() == 9 && head[8] == '{') return load_safetensors(path);
  return read_torch_checkpoint(path);
}

std::vector<std::string> checkpoint_keys(const std::string& path) {
  const fs::path p(path);
  if (fs::is_directory(p)) {
    if (fs::exists(p / "model.safetensors"))
      return SafetensorsFile((p / "model.safetensors").string()).keys();
  } else if (p.extension() == ".safetensors") {
    return SafetensorsFile(path).keys();
  }
  std::vector<std::string> keys;
  for (const auto& [name, t] : read_checkpoint(path)) keys.push_back(name);
  return keys;
}

}  // namespace vidfuse::weights
