// A whole file, memory-mapped read-only (checkpoints and safetensors files are read in place).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace vidfuse {

class MappedFile {
 public:
  // Throws vidfuse::Error naming the file when it cannot be opened, is not a regular file or cannot
  // be mapped. An empty file maps to data() == nullptr, size() == 0.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace vidfuse
