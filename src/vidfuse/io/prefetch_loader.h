// Prefetching loader: worker threads decode and transform the next videos while the consumer (the
// model) works on the current one. Memory is bounded: at most `capacity` videos are being prepared
// or waiting at any time. A failing item is delivered as a result carrying its error; the loader
// goes on with the rest. The time the consumer spends blocked in next() is measured, so the
// model's idle fraction on the extraction path can be reported.
#pragma once
#include <torch/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/video_transforms.h"

namespace vidfuse::io {

struct LoadedItem {
  int64_t index = 0;                             // position in the loader's item list
  std::map<std::string, torch::Tensor> tensors;  // whatever the task produced, by name
  std::vector<std::string> warnings;
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

class PrefetchLoader {
 public:
  // `task(index, item)` fills item.tensors / item.warnings; exceptions become item.error.
  using Task = std::function<void(int64_t index, LoadedItem& item)>;

  PrefetchLoader(int64_t num_items, Task task, LoaderOptions options = {});
  ~PrefetchLoader();  // stops the workers (items not yet taken are dropped)
  PrefetchLoader(const PrefetchLoader&) = delete;
  PrefetchLoader& operator=(const PrefetchLoader&) = delete;

  // Blocks until the next item is ready; nullopt after the last one.
  std::optional<LoadedItem> next();
  LoaderStats stats() const;

 private:
  void worker();

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
  std::map<int64_t, LoadedItem> ready_;
  bool stopping_ = false;
  LoaderStats stats_;
  std::optional<std::chrono::steady_clock::time_point> first_call_;
  std::vector<std::thread> threads_;
};

// The common task: load a clip from each path with `spec`, apply `preset`, and store it as
// tensors "frames" ([T,3,H,W] or [3,T,H,W] per the preset), "indices" and "times".
PrefetchLoader::Task clip_task(std::vector<std::string> paths, SamplingSpec spec,
                               TransformPreset preset, DecodeOptions decode = {});

}  // namespace vidfuse::io
