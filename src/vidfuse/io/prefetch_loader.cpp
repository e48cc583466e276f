#include "vidfuse/io/prefetch_loader.h"

#include <c10/util/Exception.h>

#include "vidfuse/core/error.h"

namespace vidfuse::io {

namespace {
double seconds_between(std::chrono::steady_clock::time_point a,
                       std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}
}  // namespace

double LoaderStats::idle_fraction() const {
  const double steady = elapsed_seconds - first_wait_seconds;
  if (steady <= 0) return 0.0;
  return std::max(0.0, wait_seconds - first_wait_seconds) / steady;
}

PrefetchLoader::PrefetchLoader(int64_t num_items, Task task, LoaderOptions options)
    : num_items_(num_items), task_(std::move(task)), options_(options) {
  if (num_items < 0) throw Error("PrefetchLoader: negative item count");
  if (options_.workers < 1) throw Error("PrefetchLoader: needs at least one worker");
  if (options_.capacity < 1) throw Error("PrefetchLoader: capacity must be at least 1");
  const int64_t n = std::min<int64_t>(options_.workers, std::max<int64_t>(num_items, 1));
  for (int64_t i = 0; i < n; ++i) threads_.emplace_back([this] { worker(); });
}

PrefetchLoader::~PrefetchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  slot_cv_.notify_all();
  ready_cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void PrefetchLoader::worker() {
  while (true) {
    int64_t index = 0;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      // In ordered mode items start in index order, so the one the consumer waits for is always
      // started already: the capacity bound cannot deadlock.
      slot_cv_.wait(lock, [&] {
        return stopping_ || next_to_start_ >= num_items_ || in_flight_ < options_.capacity;
      });
      if (stopping_ || next_to_start_ >= num_items_) return;
      index = next_to_start_++;
      ++in_flight_;
    }
    LoadedItem item;
    item.index = index;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      task_(index, item);
    } catch (const c10::Error& e) {
      item.error = e.what_without_backtrace();
    } catch (const std::exception& e) {
      item.error = e.what();
    } catch (...) {
      item.error = "unknown error";
    }
    if (!item.error.empty()) item.tensors.clear();
    item.seconds = seconds_between(t0, std::chrono::steady_clock::now());
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ready_.emplace(index, std::move(item));
    }
    ready_cv_.notify_all();
  }
}

std::optional<LoadedItem> PrefetchLoader::next() {
  std::unique_lock<std::mutex> lock(mutex_);
  const auto t0 = std::chrono::steady_clock::now();
  if (!first_call_) first_call_ = t0;
  if (delivered_ >= num_items_) return std::nullopt;
  ready_cv_.wait(lock, [&] {
    return options_.ordered ? ready_.count(next_to_deliver_) > 0 : !ready_.empty();
  });
  const auto t1 = std::chrono::steady_clock::now();
  const double waited = seconds_between(t0, t1);
  stats_.wait_seconds += waited;
  if (delivered_ == 0) stats_.first_wait_seconds = waited;
  auto it = options_.ordered ? ready_.find(next_to_deliver_) : ready_.begin();
  LoadedItem item = std::move(it->second);
  ready_.erase(it);
  ++delivered_;
  ++next_to_deliver_;
  --in_flight_;
  ++stats_.delivered;
  if (!item.ok()) ++stats_.failed;
  stats_.elapsed_seconds = seconds_between(*first_call_, t1);
  lock.unlock();
  slot_cv_.notify_one();
  return item;
}

LoaderStats PrefetchLoader::stats() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return stats_;
}

PrefetchLoader::Task clip_task(std::vector<std::string> paths, SamplingSpec spec,
                               TransformPreset preset, DecodeOptions decode) {
  return [paths = std::move(paths), spec, preset, decode](int64_t i, LoadedItem& item) {
    const std::string& path = paths.at(static_cast<size_t>(i));
    try {
      Clip clip = load_clip(path, spec, decode);
      item.warnings = std::move(clip.warnings);
      item.tensors["frames"] = apply_preset(preset, clip.frames);
      item.tensors["indices"] = torch::tensor(clip.indices, torch::kLong);
      item.tensors["times"] = torch::tensor(clip.times, torch::kFloat64);
    } catch (const Error& e) {
      const std::string m = e.what();
      if (m.rfind(path, 0) == 0) throw;
      throw Error(path + ": " + m);  // transform errors do not know the file
    }
  };
}

}  // namespace vidfuse::io
