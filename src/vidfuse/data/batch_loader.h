// Batches of a Dataset read ahead of the training loop: `readers` threads read the samples of the
// next batches in parallel (a batch is collated by the reader that finishes its last sample), at
// most `prefetch` batches ahead, so memory stays bounded while the compute device is kept fed.
// Batches come back in the order they were scheduled, whatever order the reads finish in, so a
// run is as deterministic as with one reader. From a StoreDataset in the stored dtype, once the
// first batch gave the shapes, each sample is read straight into its slot of the batch (one copy
// from the file or page cache, none to collate).
#pragma once
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <vector>

#include "vidfuse/core/thread_pool.h"
#include "vidfuse/data/dataset.h"

namespace vidfuse::data {

struct BatchLoaderOptions {
  int readers = 0;          // reading threads; 0 = default_readers()
  int prefetch = 4;         // batches scheduled ahead (the caller schedules; see full())
  bool pin_memory = false;  // collate into page-locked memory (CUDA: non-blocking copies)
};

// Reading threads when not set: half the cores (the other half computes), 2 to 16.
int default_readers();

class BatchLoader {
 public:
  BatchLoader(std::shared_ptr<const Dataset> data, BatchLoaderOptions options);
  ~BatchLoader();  // waits for the reads in flight

  // Queues the batch of these dataset indices.
  void schedule(std::vector<int64_t> indices);
  // As many batches are queued as `prefetch` allows.
  bool full() const { return static_cast<int>(queue_.size()) >= options_.prefetch; }
  bool empty() const { return queue_.empty(); }
  // The oldest queued batch, waiting for it if needed; rethrows a read's error. `waited_s` gets
  // the seconds spent waiting.
  Batch next(double* waited_s = nullptr);

 private:
  struct Pending;
  struct Layout;
  std::shared_ptr<const Dataset> data_;
  BatchLoaderOptions options_;
  std::shared_ptr<std::mutex> layout_mutex_;
  std::shared_ptr<std::shared_ptr<const Layout>> layout_;  // set by the first collated batch
  // Batch buffers handed out before (not pinned ones), reused once nobody else holds them: fresh
  // 100+ MB buffers would cost a page fault per 4 KB on every batch.
  std::vector<models::FusionInput> spares_;
  std::deque<std::shared_ptr<Pending>> queue_;
  std::unique_ptr<ThreadPool> pool_;
};

// The inputs on `device`, floating tensors cast to `dtype` there: stored fp16/bf16 features cross
// to the device at their stored size. Copies from pinned memory do not block the host.
models::FusionInput to_device(const models::FusionInput& input, const torch::Device& device,
                              torch::ScalarType dtype = torch::kFloat32);

// collate() into page-locked memory (for non-blocking copies to a CUDA device).
Batch collate_pinned(const std::vector<Sample>& samples, const std::vector<int64_t>& indices);

}  // namespace vidfuse::data
