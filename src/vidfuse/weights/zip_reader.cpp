#include "vidfuse/weights/zip_reader.h"

#include <array>

#include "vidfuse/core/error.h"
#include "vidfuse/core/quote.h"

namespace vidfuse::weights {

namespace {

constexpr uint32_t kLocalHeader = 0x04034b50;
constexpr uint32_t kCentralHeader = 0x02014b50;
constexpr uint32_t kEndOfCentralDir = 0x06054b50;
constexpr uint32_t kZip64EndOfCentralDir = 0x06064b50;
constexpr uint32_t kZip64Locator = 0x07064b50;
constexpr size_t kEocdSize = 22, kLocatorSize = 20, kZip64EocdSize = 56;
constexpr size_t kCentralSize = 46, kLocalSize = 30;

// Slicing-by-8 tables: checkpoints are hundreds of MB, so a byte-at-a-time CRC would be slow.
struct CrcTables {
  std::array<std::array<uint32_t, 256>, 8> t{};
  CrcTables() {
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
      t[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; ++i)
      for (int s = 1; s < 8; ++s) t[s][i] = (t[s - 1][i] >> 8) ^ t[0][t[s - 1][i] & 0xff];
  }
};

uint64_t le(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

uint32_t crc32(const uint8_t* p, size_t n, uint32_t crc) {
  static const CrcTables tables;
  const auto& t = tables.t;
  uint32_t c = ~crc;
  while (n >= 8) {
    const uint32_t lo = c ^ static_cast<uint32_t>(le(p, 4));
    const uint32_t hi = static_cast<uint32_t>(le(p + 4, 4));
    c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^ t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
        t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^ t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n--) c = t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
  return ~c;
}

ZipReader::ZipReader(const uint8_t* data, size_t size, std::string path)
    : data_(data), size_(size), path_(std::move(path)) {
  auto fail = [&](const std::string& what) { fail_file(path_, "zip archive: " + what); };
  // A field of `bytes` at [at, at+bytes), checked against the buffer.
  auto field = [&](uint64_t at, int bytes) {
    if (at > size_ || static_cast<uint64_t>(bytes) > size_ - at)
      fail("truncated (a header field lies past the end of the file)");
    return le(data_ + at, bytes);
  };

  // The end-of-central-directory record sits at the end, before a comment of up to 64 KiB.
  if (size_ < kEocdSize) fail("too short to hold an end-of-central-directory record");
  uint64_t eocd = 0;
  bool found = false;
  const size_t lowest = size_ > kEocdSize + 0xffff ? size_ - kEocdSize - 0xffff : 0;
  for (size_t at = size_ - kEocdSize + 1; at-- > lowest;) {
    if (le(data_ + at, 4) == kEndOfCentralDir && at + kEocdSize + le(data_ + at + 20, 2) <= size_) {
      eocd = at;
      found = true;
      break;
    }
  }
  if (!found) fail("no end-of-central-directory record (the file is truncated or not a zip)");

  uint64_t count = field(eocd + 10, 2);
  uint64_t cd_size = field(eocd + 12, 4);
  uint64_t cd_offset = field(eocd + 16, 4);
  if (eocd >= kLocatorSize && field(eocd - kLocatorSize, 4) == kZip64Locator) {
    const uint64_t z = field(eocd - kLocatorSize + 8, 8);
    if (field(z, 4) != kZip64EndOfCentralDir || z + kZip64EocdSize > eocd)
      fail("zip64 locator points at no zip64 end-of-central-directory record");
    count = field(z + 32, 8);
    cd_size = field(z + 40, 8);
    cd_offset = field(z + 48, 8);
  }
  if (cd_offset > size_ || cd_size > size_ - cd_offset)
    fail("central directory lies past the end of the file (truncated?)");
  if (count > cd_size / kCentralSize) fail("entry count does not fit the central directory");

  entries_.reserve(static_cast<size_t>(count));
  uint64_t at = cd_offset;
  const uint64_t cd_end = cd_offset + cd_size;
  for (uint64_t i = 0; i < count; ++i) {
    if (at + kCentralSize > cd_end || field(at, 4) != kCentralHeader)
      fail("central directory entry " + std::to_string(i) + " is malformed");
    ZipEntry e;
    const uint64_t flags = field(at + 8, 2);
    e.method = static_cast<uint16_t>(field(at + 10, 2));
    e.crc = static_cast<uint32_t>(field(at + 16, 4));
    uint64_t csize = field(at + 20, 4);
    e.size = field(at + 24, 4);
    const uint64_t name_len = field(at + 28, 2), extra_len = field(at + 30, 2),
                   comment_len = field(at + 32, 2);
    uint64_t local = field(at + 42, 4);
    const uint64_t name_at = at + kCentralSize, extra_at = name_at + name_len;
    const uint64_t next = extra_at + extra_len + comment_len;
    if (next > cd_end) fail("central directory entry " + std::to_string(i) + " overruns it");
    e.name.assign(reinterpret_cast<const char*>(data_ + name_at), name_len);
    if (flags & 1) fail("entry " + quoted_short(e.name) + " is encrypted");

    // Zip64 extended information: 8-byte values for whichever 32-bit fields are saturated.
    for (uint64_t x = extra_at; x + 4 <= extra_at + extra_len;) {
      const uint64_t id = field(x, 2), len = field(x + 2, 2);
      if (x + 4 + len > extra_at + extra_len)
        fail("entry " + quoted_short(e.name) + " has a malformed extra field");
      if (id == 0x0001) {
        uint64_t p = x + 4;
        auto take64 = [&](uint64_t& v) {
          if (v != 0xffffffffu) return;
          if (p + 8 > x + 4 + len)
            fail("entry " + quoted_short(e.name) + " has a short zip64 extra field");
          v = field(p, 8);
          p += 8;
        };
        take64(e.size);
        take64(csize);
        take64(local);
      }
      x += 4 + len;
    }
    if (e.method == 0 && csize != e.size)
      fail("stored entry " + quoted_short(e.name) +
           " has different compressed and uncompressed sizes");

    // The local header repeats name and extra (with its own lengths) before the data; its size
    // fields may be zero when a data descriptor follows, so the central directory's are used.
    if (field(local, 4) != kLocalHeader)
      fail("entry " + quoted_short(e.name) + " has no local header");
    const uint64_t data_at = local + kLocalSize + field(local + 26, 2) + field(local + 28, 2);
    if (data_at > size_ || csize > size_ - data_at)
      fail("entry " + quoted_short(e.name) + " lies past the end of the file (truncated?)");
    e.data_offset = data_at;
    if (!by_name_.emplace(e.name, entries_.size()).second)
      fail("entry " + quoted_short(e.name) + " appears twice");
    entries_.push_back(std::move(e));
    at = next;
  }
}

const ZipEntry* ZipReader::find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

std::string_view ZipReader::read(const ZipEntry& e) const {
  if (e.method != 0)
    fail_file(path_, "zip entry " + quoted_short(e.name) + " is compressed (method " +
                         std::to_string(e.method) + "); torch.save stores entries uncompressed");
  const uint8_t* p = data_ + e.data_offset;
  if (crc32(p, static_cast<size_t>(e.size)) != e.crc)
    fail_file(path_, "zip entry " + quoted_short(e.name) + " is corrupt (CRC-32 mismatch)");
  return {reinterpret_cast<const char*>(p), static_cast<size_t>(e.size)};
}

}  // namespace vidfuse::weights
