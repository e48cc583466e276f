// Prefetching loader: worker threads decode and transform the next videos while the consumer (the
// model) works on the current one. Memory is bounded: at most `capacity` videos are being prepared
// or waiting at any time. A failing item is delivered as a result carrying its error; the loader
// goes on with the rest. The time the consumer spends blocked in next() is measured, so the
// model's idle fraction on the extraction path can be reported.
//
// The item type is the caller's (a struct of what one video becomes), so consumers read named,
// typed fields instead of looking tensors up by string.
#pragma once
#include <c10/util/Exception.h>
#include <torch/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "vidfuse/core/thread_pool.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/video_transforms.h"

namespace vidfuse::io {

template <class T>
struct Loaded {
  int64_t index = 0;   // position in the loader's item list
  T value{};           // what the task produced; default-constructed when it failed
  std::string error;   // non-empty: the item failed (the message names the file)
  double seconds = 0;  // worker time spent on the item
  bool ok() const { return error.empty(); }
};

struct LoaderOptions {
  int workers = 2;
  int capacity = 4;     // K: items being prepared + items ready, at most
  bool ordered = true;  // deliver in index order (else: as soon as ready)
};

struct LoaderStats {
  int64_t delivered = 0;
  int64_t failed = 0;
  double wait_seconds = 0;        // consumer blocked in next(), all calls
  double first_wait_seconds = 0;  // of which the very first call (pipeline fill)
  double elapsed_seconds = 0;     // from the first next() call to the last delivery
  // Share of the steady state (after the first item) the consumer spent waiting for data.
  double idle_fraction() const;
};

// Checks the options and the count; throws vidfuse::Error on nonsense.
void check_loader_options(int64_t num_items, const LoaderOptions& options);
// The message of the exception in flight (c10 errors without their C++ backtrace).
std::string current_exception_message();

template <class T>
class PrefetchLoader {
 public:
  // `task(index)` returns the item; an exception becomes the delivered item's error.
  using Task = std::function<T(int64_t index)>;

  PrefetchLoader(int64_t num_items, Task task, LoaderOptions options = {})
      : num_items_(num_items),
        task_(std::move(task)),
        options_(options),
        pool_(
            static_cast<int>(std::min<int64_t>(options.workers, std::max<int64_t>(num_items, 1)))) {
    check_loader_options(num_items, options_);
    for (int i = 0; i < pool_.size(); ++i) pool_.submit([this] { worker(); });
  }
  ~PrefetchLoader() {  // stops the workers (items not yet taken are dropped); pool_ joins them
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    slot_cv_.notify_all();
    ready_cv_.notify_all();
  }
  PrefetchLoader(const PrefetchLoader&) = delete;
  PrefetchLoader& operator=(const PrefetchLoader&) = delete;

  // Blocks until the next item is ready; nullopt after the last one.
  std::optional<Loaded<T>> next() {
    std::unique_lock<std::mutex> lock(mutex_);
    const auto t0 = Clock::now();
    if (!first_call_) first_call_ = t0;
    if (delivered_ >= num_items_) return std::nullopt;
    ready_cv_.wait(lock, [&] {
      return options_.ordered ? ready_.count(next_to_deliver_) > 0 : !ready_.empty();
    });
    const auto t1 = Clock::now();
    const double waited = std::chrono::duration<double>(t1 - t0).count();
    stats_.wait_seconds += waited;
    if (delivered_ == 0) stats_.first_wait_seconds = waited;
    auto it = options_.ordered ? ready_.find(next_to_deliver_) : ready_.begin();
    Loaded<T> item = std::move(it->second);
    ready_.erase(it);
    ++delivered_;
    ++next_to_deliver_;
    --in_flight_;
    ++stats_.delivered;
    if (!item.ok()) ++stats_.failed;
    stats_.elapsed_seconds = std::chrono::duration<double>(t1 - *first_call_).count();
    lock.unlock();
    slot_cv_.notify_one();
    return item;
  }

  LoaderStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  using Clock = std::chrono::steady_clock;

  void worker() {
    while (true) {
      int64_t index = 0;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        // In ordered mode items start in index order, so the one the consumer waits for is
        // always started already: the capacity bound cannot deadlock.
        slot_cv_.wait(lock, [&] {
          return stopping_ || next_to_start_ >= num_items_ || in_flight_ < options_.capacity;
        });
        if (stopping_ || next_to_start_ >= num_items_) return;
        index = next_to_start_++;
        ++in_flight_;
      }
      Loaded<T> item;
      item.index = index;
      const auto t0 = Clock::now();
      try {
        item.value = task_(index);
      } catch (...) {
        item.error = current_exception_message();
      }
      item.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.emplace(index, std::move(item));
      }
      ready_cv_.notify_all();
    }
  }

  const int64_t num_items_;
  const Task task_;
  const LoaderOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable ready_cv_;  // consumer waits: an item became ready
  std::condition_variable slot_cv_;   // workers wait: capacity freed
  int64_t next_to_start_ = 0;
  int64_t next_to_deliver_ = 0;  // ordered mode: index of the next item handed out
  int64_t delivered_ = 0;
  int64_t in_flight_ = 0;  // started, not yet handed to the consumer
  std::map<int64_t, Loaded<T>> ready_;
  bool stopping_ = false;
  LoaderStats stats_;
  std::optional<Clock::time_point> first_call_;
  ThreadPool pool_;  // last: destroyed (its worker loops joined) before the state they use
};

// The common task: load a clip from each path with `spec` and apply `preset` to its frames
// ([T,3,H,W] or [3,T,H,W] per the preset); indices, times and warnings as load_clip gives them.
PrefetchLoader<Clip>::Task clip_task(std::vector<std::string> paths, SamplingSpec spec,
                                     TransformPreset preset, DecodeOptions decode = {});

}  // namespace vidfuse::io
