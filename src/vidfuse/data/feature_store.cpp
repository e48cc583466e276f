#include "vidfuse/data/feature_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/mapped_file.h"
#include "vidfuse/data/store_schema.h"

namespace vidfuse::data {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
constexpr const char* kSuffix = kStoreSuffix;
constexpr uint64_t kMaxHeader = 100ull << 20;

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}
}  // namespace

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream in(s);
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

uint64_t fnv1a64(const void* data, size_t size, uint64_t seed) {
  const auto* p = static_cast<const uint8_t*>(data);
  uint64_t h = seed;
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  return h;
}

namespace {
// An id as an error message shows it: control bytes escaped, a hostile length cut.
std::string quoted_id(const std::string& id) {
  constexpr size_t kShown = 64;
  std::string out = "'";
  for (size_t i = 0; i < id.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f) {
      char hex[8];
      std::snprintf(hex, sizeof(hex), "\\x%02x", c);
      out += hex;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += "'";
  if (id.size() > kShown) out += " (" + std::to_string(id.size()) + " bytes, cut)";
  return out;
}
}  // namespace

std::string store_id_problem(const std::string& id) {
  if (id.empty()) return "is empty";
  if (id == "." || id == "..") return "is '" + id + "', not a file name";
  if (id.find('/') != std::string::npos)
    return "holds a '/': an id names one file directly in the store folder";
  for (size_t i = 0; i < id.size(); ++i) {
    const auto c = static_cast<unsigned char>(id[i]);
    if (c < 0x20 || c == 0x7f)
      return "holds a control byte (" + std::string(c == 0 ? "NUL" : "code " + std::to_string(c)) +
             " at byte " + std::to_string(i) + ")";
  }
  if (id.size() > kMaxStoreIdBytes)
    return "is " + std::to_string(id.size()) +
           " bytes long; store file names take ids of at most " + std::to_string(kMaxStoreIdBytes);
  return "";
}

std::string store_file_path(const std::string& store_dir, const std::string& id,
                            const std::string& suffix) {
  const std::string problem = store_id_problem(id);
  if (!problem.empty())
    throw Error("video id " + quoted_id(id) + " " + problem +
                " (no store file can be named by it)");
  return (fs::path(store_dir) / (id + suffix)).string();
}

std::vector<std::string> required_tensors(const std::vector<std::string>& streams) {
  std::vector<std::string> out;
  for (const auto& name : streams)
    for (const StoreTensor& t : stream_tensors(parse_stream(name))) out.push_back(t.name);
  return out;
}

StoreFileInfo inspect_store_file(const std::string& path,
                                 const std::vector<std::string>& required) {
  std::string name = fs::path(path).filename().string();
  const std::string id = name.size() > std::strlen(kSuffix)
                             ? name.substr(0, name.size() - std::strlen(kSuffix))
                             : name;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    StoreFileInfo info;
    info.id = id;
    info.path = path;
    info.error = path + ": cannot open: " + std::strerror(errno);
    return info;
  }
  struct stat st {};
  const bool sized = ::fstat(fd, &st) == 0;
  StoreFileInfo info = inspect_store_entry(path, fd, 0, sized ? uint64_t(st.st_size) : 0, required);
  ::close(fd);
  info.id = id;
  return info;
}

StoreFileInfo inspect_store_entry(const std::string& where, int fd, uint64_t offset, uint64_t size,
                                  const std::vector<std::string>& required) {
  StoreFileInfo info;
  info.path = where;
  info.bytes = size;
  const std::string& path = where;
  auto read_at = [&](void* buf, uint64_t n, uint64_t at) {
    return pread_full(fd, buf, n, offset + at) == static_cast<int64_t>(n);
  };
  try {
    uint8_t len[8];
    if (size < 8 || !read_at(len, 8, 0))
      fail_file(path, "truncated: " + std::to_string(size) + " bytes");
    uint64_t header_len = 0;
    for (int i = 0; i < 8; ++i) header_len |= static_cast<uint64_t>(len[i]) << (8 * i);
    if (header_len > kMaxHeader || header_len > size - 8)
      fail_file(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                          std::to_string(size) + "-byte file (truncated or not safetensors)");
    std::string text(header_len, '\0');
    if (!read_at(text.data(), header_len, 8)) fail_file(path, "cannot read the header");
    json header;
    try {
      header = parse_json_text(text, path + ": header");
    } catch (const json::exception& e) {
      fail_file(path, std::string("header is not valid JSON: ") + e.what());
    }
    if (!header.is_object()) fail_file(path, "header is not a JSON object");
    const uint64_t data_size = size - 8 - header_len;
    uint64_t data_end = 0;
    for (auto& [key, entry] : header.items()) {
      if (key == "__metadata__") {
        for (auto& [k, v] : entry.items())
          if (v.is_string()) info.metadata[k] = v.get<std::string>();
        continue;
      }
      if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
          !entry.contains("data_offsets"))
        fail_file(path, "tensor '" + key + "': entry needs dtype, shape and data_offsets");
      const std::string dtype = entry["dtype"].get<std::string>();
      const auto elem = c10::elementSize(weights::dtype_from_name(dtype));
      uint64_t numel = 1;
      std::vector<int64_t> shape;
      for (const auto& d : entry["shape"]) {
        shape.push_back(d.get<int64_t>());
        numel *= d.get<uint64_t>();
      }
      const uint64_t begin = entry["data_offsets"][0].get<uint64_t>();
      const uint64_t end = entry["data_offsets"][1].get<uint64_t>();
      if (begin > end || end - begin != numel * elem)
        fail_file(path, "tensor '" + key + "': data_offsets do not match its shape");
      data_end = std::max(data_end, end);
      info.shapes[key] = shape;
      info.dtypes[key] = dtype;
    }
    if (data_end != data_size)
      fail_file(path, "data section is " + std::to_string(data_size) +
                          " bytes but the tensors need " + std::to_string(data_end) +
                          " (truncated or damaged file)");
    auto fmt = info.metadata.find("format");
    if (fmt == info.metadata.end() || fmt->second != kStoreFormat)
      fail_file(path, std::string("not a vidfuse feature file (metadata format is not '") +
                          kStoreFormat + "')");
    std::vector<std::string> need = required;
    auto streams = info.metadata.find("streams");
    if (streams != info.metadata.end()) {
      const auto claimed = required_tensors(split_commas(streams->second));
      need.insert(need.end(), claimed.begin(), claimed.end());
    }
    for (const auto& n : need)
      if (!info.shapes.count(n)) fail_file(path, "no tensor '" + n + "'");
    info.ok = true;
  } catch (const std::exception& e) {
    info.ok = false;
    info.error = e.what();
  }
  return info;
}

void write_store_file(const std::string& store_dir, const std::string& id,
                      const weights::TensorMap& tensors, const weights::Metadata& metadata) {
  weights::Metadata meta = metadata;
  meta["format"] = kStoreFormat;
  meta["id"] = id;
  weights::save_safetensors(store_file_path(store_dir, id), tensors, meta);
}

std::vector<std::string> list_loose_ids(const std::string& store_dir) {
  if (!fs::is_directory(store_dir)) fail_file(store_dir, "feature store folder does not exist");
  std::vector<std::string> out;
  const size_t n = std::strlen(kSuffix);
  std::error_code ec;
  // Recursive: ids may hold a '/' (a manifest's sub-folders). Temp files of atomic writes are
  // "<id>.safetensors.tmp.<pid>.<n>": not store files.
  for (fs::recursive_directory_iterator it(store_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    const std::string rel = it->path().lexically_relative(store_dir).generic_string();
    if (rel.size() <= n || rel.compare(rel.size() - n, std::string::npos, kSuffix) != 0) continue;
    out.push_back(rel.substr(0, rel.size() - n));
  }
  if (ec) fail_file(store_dir, "cannot list: " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> find_temp_files(const std::string& store_dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(store_dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec))
    if (parse_temp_name(it->path().filename().string())) out.push_back(it->path().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<StoreFileInfo> scan_store(const std::string& store_dir) {
  std::vector<StoreFileInfo> out;
  for (const std::string& id : list_loose_ids(store_dir)) {
    out.push_back(inspect_store_file(store_file_path(store_dir, id)));
    out.back().id = id;
  }
  return out;
}

std::vector<StoreFileInfo> write_store_index(const std::string& store_dir) {
  auto files = scan_store(store_dir);
  json videos = json::object();
  uint64_t total = 0;
  for (const auto& f : files) {
    if (!f.ok) continue;
    json tensors = json::object();
    for (const auto& [name, shape] : f.shapes)
      tensors[name] = {{"shape", shape}, {"dtype", f.dtypes.at(name)}};
    videos[f.id] = {{"bytes", f.bytes}, {"tensors", tensors}};
    total += f.bytes;
  }
  json index = {{"format", kStoreFormat}, {"vidfuse_version", kVidfuseVersion},
                {"updated", utc_now()},   {"videos_count", videos.size()},
                {"bytes", total},         {"videos", videos}};
  write_text_atomically((fs::path(store_dir) / "index.json").string(), index.dump(1) + "\n");
  return files;
}

void append_failure(const std::string& store_dir, const FailureRecord& r) {
  const std::string path = (fs::path(store_dir) / "failures.jsonl").string();
  const std::string line = json{{"id", r.id},
                                {"path", r.path},
                                {"error", r.error},
                                {"time", r.time.empty() ? utc_now() : r.time}}
                               .dump() +
                           "\n";
  // O_NOFOLLOW: a link planted in a shared store must not turn this append against its target.
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0)
    fail_file(path, errno == ELOOP
                        ? std::string("is a symbolic link; refusing to write through it")
                        : std::string("cannot open for appending: ") + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    fail_file(path, "is not a regular file; refusing to write to it");
  }
  // A line torn by a crash would swallow this record: start on a fresh line if needed.
  std::string text = line;
  char last = '\n';
  const off_t end = ::lseek(fd, 0, SEEK_END);
  if (end > 0 && ::pread(fd, &last, 1, end - 1) == 1 && last != '\n') text = "\n" + line;
  const ssize_t n = ::write(fd, text.data(), text.size());
  int err = errno;
  const bool synced = n == static_cast<ssize_t>(text.size()) && ::fsync(fd) == 0;
  if (!synced && n == static_cast<ssize_t>(text.size())) err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(text.size()))
    fail_file(path, std::string("write failed: ") + (n < 0 ? std::strerror(err) : "short write"));
  if (!synced) fail_file(path, std::string("fsync failed: ") + std::strerror(err));
}

std::vector<FailureRecord> read_failures(const std::string& store_dir) {
  std::vector<FailureRecord> out;
  std::ifstream in(fs::path(store_dir) / "failures.jsonl");
  std::string line;
  while (std::getline(in, line)) {
    try {
      const json j = json::parse(line);  // a torn last line (killed writer) is skipped
      out.push_back(
          {j.value("id", ""), j.value("path", ""), j.value("error", ""), j.value("time", "")});
    } catch (const json::exception&) {
    }
  }
  return out;
}

void write_npy(const std::string& path, const torch::Tensor& tensor) {
  torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
  std::string descr;
  switch (t.scalar_type()) {
    case torch::kFloat32:
      descr = "<f4";
      break;
    case torch::kFloat16:
      descr = "<f2";
      break;
    case torch::kFloat64:
      descr = "<f8";
      break;
    case torch::kInt64:
      descr = "<i8";
      break;
    default:
      t = t.to(torch::kFloat32);
      descr = "<f4";
  }
  std::string shape = "(";
  for (int64_t d = 0; d < t.dim(); ++d) shape += std::to_string(t.size(d)) + ",";
  if (t.dim() > 1) shape.pop_back();
  shape += ")";
  std::string header =
      "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // NPY v1.0: magic, version, little-endian u16 header length; header padded with spaces and a
  // newline so that the data starts at a multiple of 64 bytes.
  const size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  write_file_atomically(path, [&](std::ostream& out) {
    out.write("\x93NUMPY\x01\x00", 8);
    const uint16_t n = static_cast<uint16_t>(header.size());
    const char len[2] = {static_cast<char>(n & 0xff), static_cast<char>(n >> 8)};
    out.write(len, 2);
    out.write(header.data(), header.size());
    out.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  });
}

}  // namespace vidfuse::data
