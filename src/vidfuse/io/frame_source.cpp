#include "vidfuse/io/frame_source.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "vidfuse/core/error.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/video_reader.h"

namespace vidfuse::io {

namespace fs = std::filesystem;

namespace {

std::string lower_extension(const std::string& path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

// "img_00010.jpg" after "img_00009.jpg", and "frame2.png" before "frame10.png": digit runs compare
// as numbers, so folders written without zero padding still play in order.
bool natural_less(const std::string& a, const std::string& b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      std::string na = a.substr(i, i2 - i), nb = b.substr(j, j2 - j);
      na.erase(0, std::min(na.find_first_not_of('0'), na.size()));
      nb.erase(0, std::min(nb.find_first_not_of('0'), nb.size()));
      if (na.size() != nb.size()) return na.size() < nb.size();
      if (na != nb) return na < nb;
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

std::string codec_of(const std::string& path) {
  const std::string ext = lower_extension(path);
  if (ext == ".jpg" || ext == ".jpeg") return "jpeg";
  return ext.empty() ? "" : ext.substr(1);
}

// Image files as frames: shared by folders (many) and single images (one).
class ImageSequenceSource final : public FrameSource {
 public:
  ImageSequenceSource(std::string path, std::vector<std::string> files, double fps, bool folder)
      : files_(std::move(files)) {
    info_.path = std::move(path);
    info_.kind = folder ? "frames" : "image";
    info_.container = folder ? "image folder" : "image";
    info_.codec = codec_of(files_.front());
    info_.fps = fps;
    info_.frame_count = static_cast<int64_t>(files_.size());
    info_.frame_count_source = "files";
    info_.duration = static_cast<double>(files_.size()) / fps;
    first_ = read_image_rgb(files_.front());
    info_.height = first_.size(0);
    info_.width = first_.size(1);
    info_.pixel_format = "rgb24";
    const int64_t n = info_.frame_count;
    for (int64_t i = 0; i < n; ++i) table_.times.push_back(static_cast<double>(i) / fps);
    table_.keyframe.assign(n, 1);
    table_.end_time = static_cast<double>(n) / fps;
  }

  const MediaInfo& info() const override { return info_; }
  const FrameTable& frames() override { return table_; }
  const std::vector<std::string>& warnings() const override { return warnings_; }

  torch::Tensor read(const std::vector<int64_t>& indices,
                     std::vector<std::string>* warnings) override {
    const int64_t n = info_.frame_count;
    for (int64_t i : indices)
      if (i < 0 || i >= n)
        fail_file(info_.path, "frame index " + std::to_string(i) + " out of range (" +
                                  std::to_string(n) + " frames)");
    std::vector<int64_t> unique(indices);
    std::sort(unique.begin(), unique.end());
    unique.erase(std::unique(unique.begin(), unique.end()), unique.end());
    torch::Tensor out =
        empty_frame_buffer({static_cast<int64_t>(unique.size()), info_.height, info_.width, 3});
    std::vector<int64_t> failed;
    std::string first_error;
    torch::Tensor last_good;
    std::vector<int64_t> pending;  // failed before any good frame: filled by the next good one
    for (size_t k = 0; k < unique.size(); ++k) {
      torch::Tensor img;
      try {
        img = unique[k] == 0 ? first_ : read_image_rgb(files_[unique[k]]);
        if (img.size(0) != info_.height || img.size(1) != info_.width)
          fail_file(files_[unique[k]],
                    "size " + std::to_string(img.size(1)) + "x" + std::to_string(img.size(0)) +
                        " differs from the first frame's " + std::to_string(info_.width) + "x" +
                        std::to_string(info_.height));
      } catch (const Error& e) {
        failed.push_back(unique[k]);
        if (first_error.empty()) first_error = e.what();
        if (last_good.defined())
          out[k].copy_(last_good);
        else
          pending.push_back(static_cast<int64_t>(k));
        continue;
      }
      out[k].copy_(img);
      last_good = img;
      for (int64_t p : pending) out[p].copy_(img);
      pending.clear();
    }
    if (!pending.empty()) fail_file(info_.path, "no frame could be read: " + first_error);
    if (!failed.empty() && warnings) {
      std::string list;
      for (size_t i = 0; i < failed.size() && i < 12; ++i)
        list += (i ? ", " : "") + std::to_string(failed[i]);
      warnings->push_back(info_.path + ": " + std::to_string(failed.size()) +
                          " frame image(s) could not be read and were replaced by a neighbour: [" +
                          list + "] (first: " + first_error + ")");
    }
    std::vector<int64_t> pos(indices.size());
    for (size_t i = 0; i < indices.size(); ++i)
      pos[i] = std::lower_bound(unique.begin(), unique.end(), indices[i]) - unique.begin();
    torch::Tensor ordered =
        empty_frame_buffer({static_cast<int64_t>(pos.size()), info_.height, info_.width, 3});
    return torch::index_select_out(ordered, out, 0, torch::tensor(pos, torch::kLong));
  }

 private:
  std::vector<std::string> files_;
  MediaInfo info_;
  FrameTable table_;
  torch::Tensor first_;
  std::vector<std::string> warnings_;
};

class LargeBufferPool {
 public:
  static LargeBufferPool& get() {
    static auto* pool = new LargeBufferPool;  // never destroyed: tensors may outlive statics
    return *pool;
  }

  void* acquire(size_t bytes, size_t* capacity) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Smallest free buffer that fits without wasting more than half of it.
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it)
        if (it->second >= bytes && it->second <= 2 * bytes &&
            (best == free_.end() || it->second < best->second))
          best = it;
      if (best != free_.end()) {
        void* p = best->first;
        *capacity = best->second;
        pooled_ -= best->second;
        free_.erase(best);
        return p;
      }
    }
    const size_t cap = (bytes + kHugePage - 1) / kHugePage * kHugePage;
    void* p = ::mmap(nullptr, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    ::madvise(p, cap, MADV_HUGEPAGE);  // a hint: 512x fewer page faults where THP is on
    *capacity = cap;
    return p;
  }

  void release(void* p, size_t cap) {
    std::lock_guard<std::mutex> lock(mutex_);
    while (!free_.empty() && pooled_ + cap > kMaxPooled) {  // evict the oldest
      ::munmap(free_.front().first, free_.front().second);
      pooled_ -= free_.front().second;
      free_.erase(free_.begin());
    }
    if (cap > kMaxPooled) {
      ::munmap(p, cap);
      return;
    }
    free_.emplace_back(p, cap);
    pooled_ += cap;
  }

 private:
  static constexpr size_t kHugePage = size_t{2} << 20;
  static constexpr size_t kMaxPooled = size_t{1} << 30;
  std::mutex mutex_;
  std::vector<std::pair<void*, size_t>> free_;
  size_t pooled_ = 0;
};

}  // namespace

torch::Tensor empty_frame_buffer(c10::IntArrayRef sizes, torch::ScalarType dtype) {
  int64_t numel = 1;
  for (int64_t s : sizes) numel *= s;
  const size_t bytes = static_cast<size_t>(numel) * c10::elementSize(dtype);
  if (bytes < (size_t{8} << 20)) return torch::empty(sizes, torch::TensorOptions().dtype(dtype));
  size_t cap = 0;
  void* p = LargeBufferPool::get().acquire(bytes, &cap);
  return torch::from_blob(
      p, sizes, [cap](void* q) { LargeBufferPool::get().release(q, cap); },
      torch::TensorOptions().dtype(dtype));
}

bool is_image_file(const std::string& path) {
  static const char* kExt[] = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"};
  const std::string ext = lower_extension(path);
  return std::any_of(std::begin(kExt), std::end(kExt), [&](const char* e) { return ext == e; });
}

std::unique_ptr<FrameSource> open_frame_source(const std::string& path,
                                               const DecodeOptions& options) {
  if (!(options.image_folder_fps > 0)) fail_file(path, "image_folder_fps must be positive");
  struct stat sb {};
  if (::stat(path.c_str(), &sb) == 0 && S_ISDIR(sb.st_mode)) {
    std::vector<std::string> files;
    std::error_code ec;
    for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file(ec) && is_image_file(it->path().string()))
        files.push_back(it->path().string());
    }
    if (ec) fail_file(path, "cannot list the folder: " + ec.message());
    if (files.empty())
      fail_file(path, "the folder holds no frame images (.jpg .png .bmp .webp .tif)");
    std::sort(files.begin(), files.end(), [](const std::string& a, const std::string& b) {
      return natural_less(fs::path(a).filename().string(), fs::path(b).filename().string());
    });
    return std::make_unique<ImageSequenceSource>(path, std::move(files), options.image_folder_fps,
                                                 true);
  }
  if (is_image_file(path)) {
    if (::stat(path.c_str(), &sb) != 0)
      fail_file(path, std::string("cannot access: ") + std::strerror(errno));
    return std::make_unique<ImageSequenceSource>(path, std::vector<std::string>{path},
                                                 options.image_folder_fps, false);
  }
  return std::make_unique<VideoReader>(path, options);
}

Clip load_clip(FrameSource& source, const SamplingSpec& spec) {
  const FrameTable& table = source.frames();
  Clip clip;
  const std::string& path = source.info().path;
  clip.warnings = source.warnings();
  Sample sample;
  try {
    sample = sample_frames(spec, table.times, table.end_time);
  } catch (const Error& e) {
    fail_file(path, e.what());
  }
  for (const auto& note : sample.notes) clip.warnings.push_back(path + ": " + note);
  clip.frames = source.read(sample.indices, &clip.warnings);
  clip.indices = std::move(sample.indices);
  clip.times.reserve(clip.indices.size());
  for (int64_t i : clip.indices) clip.times.push_back(table.times[i]);
  clip.num_groups = sample.num_groups;
  clip.info = source.info();
  return clip;
}

Clip load_clip(const std::string& path, const SamplingSpec& spec, const DecodeOptions& options) {
  auto source = open_frame_source(path, options);
  return load_clip(*source, spec);
}

}  // namespace vidfuse::io
