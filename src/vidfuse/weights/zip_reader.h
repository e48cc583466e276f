// A read-only view of a zip archive held in memory, enough for torch.save's archives: stored
// (uncompressed) entries, data descriptors (sizes taken from the central directory), zip64 sizes
// and offsets. Every field is bounds-checked against the buffer; entry data is CRC-checked.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace vidfuse::weights {

// CRC-32 (ISO-HDLC, as zip uses); `crc` continues a previous result.
uint32_t crc32(const uint8_t* data, size_t size, uint32_t crc = 0);

struct ZipEntry {
  std::string name;
  uint16_t method = 0;       // 0 = stored
  uint32_t crc = 0;          // from the central directory
  uint64_t size = 0;         // uncompressed size
  uint64_t data_offset = 0;  // where the stored bytes begin
};

class ZipReader {
 public:
  // Parses the central directory of data[0, size); throws vidfuse::Error naming `path`.
  ZipReader(const uint8_t* data, size_t size, std::string path);

  const std::vector<ZipEntry>& entries() const { return entries_; }
  const ZipEntry* find(const std::string& name) const;

  // The bytes of a stored entry after checking its CRC; throws if compressed or corrupt.
  std::string_view read(const ZipEntry& entry) const;

 private:
  const uint8_t* data_;
  size_t size_;
  std::string path_;
  std::vector<ZipEntry> entries_;
  std::unordered_map<std::string, size_t> by_name_;
};

}  // namespace vidfuse::weights
