// Reading files: a whole file memory-mapped read-only (checkpoints and safetensors files are read
// in place), and positioned reads of a part of one (store entries, shard members).
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

// Reads `n` bytes at `offset` of `fd` into `buf`, through short reads and EINTR. Returns the bytes
// read: `n`, or fewer where the file ends first; -1 on a read error, with errno set. The callers
// word the error, since only they know what the bytes were (a shard member, a store file).
int64_t pread_full(int fd, void* buf, uint64_t n, uint64_t offset);

}  // namespace vidfuse
