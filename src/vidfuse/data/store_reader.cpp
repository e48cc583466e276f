#include "vidfuse/data/store_reader.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "vidfuse/core/error.h"
#include "vidfuse/core/mapped_file.h"
#include "vidfuse/data/feature_store.h"

namespace vidfuse::data {

namespace fs = std::filesystem;

namespace {

void pread_exact(int fd, uint8_t* p, size_t n, uint64_t off, const std::string& where) {
  const int64_t r = pread_full(fd, p, n, off);
  if (r < 0) throw Error(where + ": read failed: " + std::strerror(errno));
  if (static_cast<uint64_t>(r) < n)
    throw Error(where + ": the file ends " + std::to_string(n - static_cast<uint64_t>(r)) +
                " bytes before the entry does (truncated)");
}

template <class Bits>
bool finite_bits(const torch::Tensor& t, Bits exponent) {
  const auto* p = static_cast<const Bits*>(t.data_ptr());
  const int64_t n = t.numel();
  Bits bad = 0;
  // All-ones exponent = inf or NaN. OR-reducing a flag keeps the loop branch-free (vectorised).
  for (int64_t i = 0; i < n; ++i) bad |= static_cast<Bits>((p[i] & exponent) == exponent);
  return bad == 0;
}

}  // namespace

bool all_finite(const torch::Tensor& tensor) {
  if (!tensor.defined() || !tensor.is_floating_point()) return true;
  const torch::Tensor t =
      tensor.device().is_cpu() ? tensor.contiguous() : tensor.cpu().contiguous();
  switch (t.scalar_type()) {
    case torch::kHalf:
      return finite_bits<uint16_t>(t, 0x7c00);
    case torch::kBFloat16:
      return finite_bits<uint16_t>(t, 0x7f80);
    case torch::kFloat:
      return finite_bits<uint32_t>(t, 0x7f800000u);
    case torch::kDouble:
      return finite_bits<uint64_t>(t, 0x7ff0000000000000ull);
    default:
      return torch::isfinite(t).all().item<bool>();
  }
}

StoreReader::StoreReader(const std::string& dir) : dir_(dir) {
  if (!fs::is_directory(dir)) fail_file(dir, "feature store folder does not exist");
  packed_ = is_packed_store(dir);
  if (!packed_) {
    ids_ = list_loose_ids(dir);
  } else {
    index_ = read_packed_index(dir);
    ids_ = index_.ids;
    // One stat per shard: a missing or short shard is named now, with an entry it holds.
    std::vector<uint64_t> need(index_.shards.size(), 0);
    std::vector<size_t> last(index_.shards.size(), 0);
    std::vector<size_t> count(index_.shards.size(), 0);
    for (size_t i = 0; i < ids_.size(); ++i) {
      const size_t s = size_t(index_.shard[i]);
      ++count[s];
      if (index_.offset[i] + index_.length[i] >= need[s]) {
        need[s] = index_.offset[i] + index_.length[i];
        last[s] = i;
      }
    }
    std::set<std::string> listed(index_.shards.begin(), index_.shards.end());
    for (size_t s = 0; s < index_.shards.size(); ++s) {
      const std::string path = index_.shard_path(s);
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0)
        fail_file(path, "shard listed in " + std::string(kPackedIndexName) + " is missing (" +
                            std::string(std::strerror(errno)) + "); its " +
                            std::to_string(count[s]) + " videos" +
                            (count[s] ? ", e.g. '" + ids_[last[s]] + "'," : "") +
                            " cannot be read");
      const uint64_t size = static_cast<uint64_t>(st.st_size);
      if (size < need[s] || size != index_.shard_bytes[s])
        fail_file(path, "shard is " + std::to_string(size) + " bytes but the index says " +
                            std::to_string(index_.shard_bytes[s]) +
                            (size < need[s] ? " and entry '" + ids_[last[s]] + "' ends at byte " +
                                                  std::to_string(need[s]) + " (truncated shard)"
                                            : " (the shard was changed after packing)"));
    }
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec); !ec && it != fs::directory_iterator();
         it.increment(ec)) {
      const std::string name = it->path().filename().string();
      if (name.size() > 4 && name.compare(name.size() - 4, 4, ".tar") == 0 && !listed.count(name))
        fail_file(it->path().string(), std::string("shard is not in ") + kPackedIndexName +
                                           " (a stale index: rerun `vidfuse store pack` to "
                                           "rebuild it)");
    }
    // Each shard's descriptor stays open once used: make room for them all (Kinetics-700 at 1 GB
    // shards is ~1,300, above the usual soft limit of 1,024).
    struct rlimit lim {};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max &&
        lim.rlim_cur < index_.shards.size() + 256) {
      lim.rlim_cur = std::min<rlim_t>(lim.rlim_max, index_.shards.size() + 1024);
      ::setrlimit(RLIMIT_NOFILE, &lim);
    }
    fds_.reset(new std::atomic<int>[index_.shards.size()]);
    for (size_t s = 0; s < index_.shards.size(); ++s) fds_[s].store(-1);
  }
  pos_.reserve(ids_.size());
  for (size_t i = 0; i < ids_.size(); ++i) pos_.emplace(ids_[i], i);
}

StoreReader::~StoreReader() {
  if (!fds_) return;
  for (size_t s = 0; s < index_.shards.size(); ++s)
    if (fds_[s].load() >= 0) ::close(fds_[s].load());
}

std::string StoreReader::where(const std::string& id) const {
  if (!packed_) return store_file_path(dir_, id);
  auto it = pos_.find(id);
  if (it == pos_.end()) return dir_ + "[" + id + "]";
  return index_.shard_path(size_t(index_.shard[it->second])) + "[" + id + ".safetensors]";
}

int StoreReader::shard_fd(int32_t shard) const {
  std::atomic<int>& slot = fds_[size_t(shard)];
  int fd = slot.load(std::memory_order_acquire);
  if (fd >= 0) return fd;
  const std::string path = index_.shard_path(size_t(shard));
  fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail_file(path, std::string("cannot open shard: ") + std::strerror(errno));
  int expected = -1;
  if (!slot.compare_exchange_strong(expected, fd)) {  // another thread opened it first
    ::close(fd);
    return expected;
  }
  return fd;
}

StoreReader::Span::Span(Span&& o) noexcept
    : fd_(o.fd_),
      owned_(o.owned_),
      offset_(o.offset_),
      length_(o.length_),
      where_(std::move(o.where_)) {
  o.owned_ = false;
}

StoreReader::Span::~Span() {
  if (owned_ && fd_ >= 0) ::close(fd_);
}

void StoreReader::Span::read(void* dst, uint64_t n, uint64_t at) const {
  if (at > length_ || n > length_ - at)
    throw Error(where_ + ": bytes [" + std::to_string(at) + ", " + std::to_string(at + n) +
                ") lie outside its " + std::to_string(length_) + " bytes");
  pread_exact(fd_, static_cast<uint8_t*>(dst), n, offset_ + at, where_);
}

StoreReader::Span StoreReader::span(const std::string& id) const {
  Span s;
  s.where_ = where(id);
  if (!packed_) {
    s.fd_ = ::open(s.where_.c_str(), O_RDONLY | O_CLOEXEC);
    if (s.fd_ < 0)
      fail_file(s.where_, std::string("cannot open the video's features: ") + std::strerror(errno) +
                              " (run `vidfuse store verify` to list what is missing)");
    s.owned_ = true;
    struct stat st {};
    if (::fstat(s.fd_, &st) != 0 || !S_ISREG(st.st_mode)) fail_file(s.where_, "not a regular file");
    s.length_ = static_cast<uint64_t>(st.st_size);
    return s;
  }
  auto it = pos_.find(id);
  if (it == pos_.end()) throw Error(dir_ + ": no video '" + id + "' in " + kPackedIndexName);
  const size_t i = it->second;
  s.fd_ = shard_fd(index_.shard[i]);
  s.offset_ = index_.offset[i];
  s.length_ = index_.length[i];
  return s;
}

torch::Tensor StoreReader::read(const std::string& id) const {
  const Span s = span(id);
  torch::Tensor bytes = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  s.read(bytes.data_ptr<uint8_t>(), s.size(), 0);
  return bytes;
}

std::unique_ptr<weights::SafetensorsFile> StoreReader::open(const std::string& id) const {
  const std::string name = where(id);
  torch::Tensor bytes = read(id);
  std::unique_ptr<weights::SafetensorsFile> file;
  try {
    file = std::make_unique<weights::SafetensorsFile>(name, std::move(bytes));
  } catch (const Error& e) {
    if (!packed_) throw;
    throw Error(std::string(e.what()) +
                " (the index disagrees with its shard: run `vidfuse store verify`)");
  }
  check_id(*file, id);
  return file;
}

void StoreReader::check_id(const weights::SafetensorsFile& file, const std::string& id) const {
  auto meta = file.metadata().find("id");
  if (meta != file.metadata().end() && meta->second != id)
    throw Error(file.path() + ": holds the features of '" + meta->second + "', not '" + id + "'" +
                (packed_ ? " (the index disagrees with its shard)" : ""));
}

}  // namespace vidfuse::data
