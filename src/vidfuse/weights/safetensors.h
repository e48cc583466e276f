// safetensors (https://github.com/huggingface/safetensors): an 8-byte little-endian header length,
// a JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then raw
// little-endian data. Reading memory-maps the file and validates every entry before any tensor is
// handed out; writing is atomic.
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "vidfuse/core/mapped_file.h"

namespace vidfuse::weights {

// Ordered by name, as safetensors writers order them.
using TensorMap = std::map<std::string, torch::Tensor>;
using Metadata = std::map<std::string, std::string>;

struct TensorInfo {
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
  size_t begin = 0, end = 0;  // byte offsets into the data section
};

// A validated, memory-mapped safetensors file. Tensors returned by `get` own a copy of their bytes
// (or alias the mapping with `zero_copy`, valid while this object lives).
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::string& path);
  // A safetensors file already in memory (a member of a packed store's shard): `bytes` is a 1-D
  // uint8 CPU tensor holding exactly the file; `name` stands for the file in errors. Tensors from
  // `get(name, /*zero_copy=*/true)` alias `bytes` and keep it alive.
  SafetensorsFile(const std::string& name, torch::Tensor bytes);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  std::vector<std::string> keys() const;
  bool contains(const std::string& name) const { return infos_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  const Metadata& metadata() const { return metadata_; }

  // The tensor in its stored dtype; an owned copy unless `zero_copy`.
  torch::Tensor get(const std::string& name, bool zero_copy = false) const;

 private:
  void parse_(const uint8_t* bytes, size_t size);

  std::string path_;
  std::optional<MappedFile> file_;  // the mapping, when read from a path
  torch::Tensor bytes_;             // the whole file, when given in memory
  const uint8_t* data_ = nullptr;   // start of the data section
  std::map<std::string, TensorInfo> infos_;
  Metadata metadata_;
};

// Every tensor of a file, in its stored dtype.
TensorMap load_safetensors(const std::string& path);
// Every tensor, converted to `dtype` when it is a floating type (integer tensors keep theirs).
TensorMap load_safetensors(const std::string& path, torch::ScalarType float_dtype);
Metadata load_safetensors_metadata(const std::string& path);

// Writes atomically (temp file + rename). Tensors are made contiguous and moved to the CPU.
void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const Metadata& metadata = {});

// The safetensors dtype name ("F32", "BF16", ...) of a torch dtype and back; throws on unknown.
std::string dtype_name(torch::ScalarType dtype);
torch::ScalarType dtype_from_name(const std::string& name);

}  // namespace vidfuse::weights
