#include "vidfuse/core/atomic_file.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <ostream>
#include <random>
#include <streambuf>
#include <vector>

#include "vidfuse/core/error.h"

namespace vidfuse {

namespace {

constexpr const char* kTempMarker = ".tmp.";
constexpr time_t kForeignTempAge = 24 * 3600;  // another host's temp: stale after a day

std::string errno_text(int err) { return std::strerror(err); }

// The first 8 hex digits of a temp tag: which host wrote it (a pid only means something there).
// std::hash of a string is a fixed function of its bytes in libstdc++, the same in every process.
uint32_t host_tag() {
  static const uint32_t tag = [] {
    char name[256] = {};
    if (::gethostname(name, sizeof(name) - 1) != 0) return 0u;
    return static_cast<uint32_t>(std::hash<std::string>{}(name));
  }();
  return tag;
}

// A temp name nobody can guess ahead of time (random_device reads the kernel's generator).
std::string fresh_temp_name(const std::string& path) {
  static thread_local std::random_device rd;
  char tag[24];
  std::snprintf(tag, sizeof(tag), "%08x%08x", host_tag(), static_cast<uint32_t>(rd()));
  return path + kTempMarker + std::to_string(::getpid()) + "." + tag;
}

// Creates a fresh temp file beside `path` for writing: O_EXCL (never an existing file), O_NOFOLLOW
// (never through a link). Mode 0666 less the umask, as std::ofstream made them (a group-shared
// store keeps its group bits). Returns the descriptor; the name goes to `tmp`.
int create_temp(const std::string& path, std::string& tmp) {
  for (int attempt = 0; attempt < 16; ++attempt) {
    tmp = fresh_temp_name(path);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0666);
    if (fd >= 0) return fd;
    if (errno != EEXIST) fail_file(path, "cannot open for writing: " + errno_text(errno));
  }
  fail_file(path, "cannot create a temp file beside it (every fresh name was taken)");
}

std::string folder_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

// Opens `path` with `flags` and fsyncs it: 0, or the errno of whichever step failed.
int fsync_at(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return errno;
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  return rc == 0 ? 0 : err;
}

// Makes a rename in `dir` durable. Filesystems that cannot sync a folder (EINVAL) are left be:
// there is nothing more to do on them.
void fsync_folder(const std::string& dir, const std::string& path) {
  const int err = fsync_at(dir, O_RDONLY | O_DIRECTORY);
  if (err != 0 && err != EINVAL)
    fail_file(path, "fsync of its folder failed (the file may not survive a power loss): " +
                        errno_text(err));
}

void rename_into_place(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    fail_file(path, "cannot rename temp file into place: " + errno_text(errno));
  fsync_folder(folder_of(path), path);
}

// An ostream buffer over a file descriptor that remembers the first write error (errno), so
// "disk full" reaches the caller as such.
class FdWriteBuf : public std::streambuf {
 public:
  explicit FdWriteBuf(int fd) : fd_(fd), buf_(1 << 16) { reset(); }
  int error() const { return err_; }

 protected:
  int_type overflow(int_type ch) override {
    if (!drain()) return traits_type::eof();
    if (!traits_type::eq_int_type(ch, traits_type::eof())) {
      *pptr() = traits_type::to_char_type(ch);
      pbump(1);
    }
    return traits_type::not_eof(ch);
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    if (n < static_cast<std::streamsize>(buf_.size()) / 2) return std::streambuf::xsputn(s, n);
    // Large blocks (tensor data) go straight to the file.
    if (!drain() || !write_all(s, static_cast<size_t>(n))) return 0;
    return n;
  }
  int sync() override { return drain() ? 0 : -1; }

 private:
  void reset() { setp(buf_.data(), buf_.data() + buf_.size()); }
  bool drain() {
    const bool ok = write_all(pbase(), static_cast<size_t>(pptr() - pbase()));
    reset();
    return ok;
  }
  bool write_all(const char* p, size_t n) {
    if (err_) return false;
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0) {
        if (errno == EINTR) continue;
        err_ = errno;
        return false;
      }
      p += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  }

  int fd_;
  int err_ = 0;
  std::vector<char> buf_;
};

bool all_of_chars(const std::string& s, size_t from, size_t to, int (*pred)(int)) {
  if (from >= to) return false;
  for (size_t i = from; i < to; ++i)
    if (!pred(static_cast<unsigned char>(s[i]))) return false;
  return true;
}

}  // namespace

void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write) {
  std::string tmp;
  int fd = create_temp(path, tmp);
  bool published = false;
  try {
    {
      FdWriteBuf buf(fd);
      std::ostream out(&buf);
      write(out);
      out.flush();
      if (!out || buf.error())
        fail_file(path,
                  "write failed (disk full?): " + errno_text(buf.error() ? buf.error() : EIO));
    }
    if (::fsync(fd) != 0) fail_file(path, "fsync failed (disk full?): " + errno_text(errno));
    const int rc = ::close(fd);
    fd = -1;
    if (rc != 0) fail_file(path, "closing the file failed: " + errno_text(errno));
    if (std::rename(tmp.c_str(), path.c_str()) != 0)
      fail_file(path, "cannot rename temp file into place: " + errno_text(errno));
    published = true;
    fsync_folder(folder_of(path), path);
  } catch (...) {
    if (fd >= 0) ::close(fd);
    if (!published) ::unlink(tmp.c_str());
    throw;
  }
}

void write_text_atomically(const std::string& path, std::string_view text) {
  write_file_atomically(path, [&](std::ostream& out) { out.write(text.data(), text.size()); });
}

std::string temp_path_for(const std::string& path) {
  std::string tmp;
  ::close(create_temp(path, tmp));
  return tmp;
}

void publish_temp_file(const std::string& tmp, const std::string& path) {
  const int err = fsync_at(tmp, O_RDONLY | O_NOFOLLOW);
  if (err != 0) fail_file(path, "fsync failed (disk full?): " + errno_text(err));
  rename_into_place(tmp, path);
}

namespace {
// "<name>.tmp.<pid>.<tag>" → pid, tag.
bool parse_temp(const std::string& name, long* pid, std::string* tag) {
  const size_t marker = name.rfind(kTempMarker);
  if (marker == std::string::npos || marker == 0) return false;
  const size_t pid_begin = marker + std::strlen(kTempMarker);
  const size_t dot = name.find('.', pid_begin);
  if (dot == std::string::npos || dot - pid_begin > 10) return false;
  if (!all_of_chars(name, pid_begin, dot, [](int c) { return c >= '0' && c <= '9' ? 1 : 0; }))
    return false;
  // The tag: 16 hex digits now, a decimal counter before.
  if (!all_of_chars(name, dot + 1, name.size(), [](int c) { return std::isxdigit(c) ? 1 : 0; }))
    return false;
  if (pid) *pid = std::stol(name.substr(pid_begin, dot - pid_begin));
  if (tag) *tag = name.substr(dot + 1);
  return true;
}
}  // namespace

bool parse_temp_name(const std::string& name, long* pid) { return parse_temp(name, pid, nullptr); }

std::vector<std::string> find_stale_temps(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return out;
  const time_t now = std::time(nullptr);
  char ours[9];
  std::snprintf(ours, sizeof(ours), "%08x", host_tag());
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    long pid = 0;
    std::string tag;
    if (!parse_temp(name, &pid, &tag) || pid <= 0) continue;
    const std::string path = dir + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;  // links: not ours
    const bool new_form = tag.size() == 16;
    const bool this_host = !new_form || tag.compare(0, 8, ours) == 0;
    bool stale;
    if (this_host)
      stale = ::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH;
    else
      stale = now - st.st_mtime > kForeignTempAge;
    if (stale) out.push_back(path);
  }
  ::closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> remove_stale_temps(const std::string& dir) {
  std::vector<std::string> removed;
  for (const auto& path : find_stale_temps(dir))
    if (::unlink(path.c_str()) == 0) removed.push_back(path);
  return removed;
}

}  // namespace vidfuse
