#include "vidfuse/data/batch_loader.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

namespace vidfuse::data {

int default_readers() {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::clamp(cores / 2, 2, 16);
}

models::FusionInput to_device(const models::FusionInput& input, const torch::Device& device,
                              torch::ScalarType dtype) {
  auto move = [&](const torch::Tensor& t) {
    if (!t.defined()) return t;
    torch::Tensor out = t.to(device, /*non_blocking=*/t.is_pinned());
    return out.is_floating_point() ? out.to(dtype) : out;
  };
  return {move(input.semantic), move(input.semantic_cls), move(input.motion)};
}

Batch collate_pinned(const std::vector<Sample>& samples, const std::vector<int64_t>& indices) {
  // collate() checks the shapes and names the odd sample; the pinned copy follows.
  Batch b = collate(samples, indices);
  auto pin = [](torch::Tensor& t) {
    if (t.defined()) t = t.pin_memory();
  };
  pin(b.input.semantic);
  pin(b.input.semantic_cls);
  pin(b.input.motion);
  pin(b.labels);
  return b;
}

struct BatchLoader::Pending {
  std::vector<int64_t> indices;
  std::vector<Sample> samples;
  std::atomic<int64_t> left{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::promise<Batch> done;
  std::future<Batch> result;
};

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> data, BatchLoaderOptions options)
    : data_(std::move(data)), options_(options) {
  if (options_.readers <= 0) options_.readers = default_readers();
  options_.prefetch = std::max(1, options_.prefetch);
  pool_ = std::make_unique<ThreadPool>(options_.readers);
}

BatchLoader::~BatchLoader() {
  pool_.reset();  // runs the queued reads to the end and joins; their results are dropped
}

void BatchLoader::schedule(std::vector<int64_t> indices) {
  auto p = std::make_shared<Pending>();
  p->indices = std::move(indices);
  p->samples.resize(p->indices.size());
  p->left = static_cast<int64_t>(p->indices.size());
  p->result = p->done.get_future();
  queue_.push_back(p);
  const bool pin = options_.pin_memory;
  for (size_t i = 0; i < p->indices.size(); ++i) {
    pool_->submit([p, i, pin, data = data_.get()] {
      try {
        p->samples[i] = data->get(p->indices[i]);
      } catch (...) {
        std::lock_guard<std::mutex> lock(p->error_mutex);
        if (!p->error) p->error = std::current_exception();
      }
      if (p->left.fetch_sub(1) != 1) return;
      // The last read of the batch collates it (on this reader, not on the training thread).
      if (p->error) return p->done.set_exception(p->error);
      try {
        p->done.set_value(pin ? collate_pinned(p->samples, p->indices)
                              : collate(p->samples, p->indices));
      } catch (...) {
        p->done.set_exception(std::current_exception());
      }
      p->samples.clear();
    });
  }
}

Batch BatchLoader::next(double* waited_s) {
  if (queue_.empty()) throw std::logic_error("BatchLoader::next: nothing scheduled");
  std::shared_ptr<Pending> p = std::move(queue_.front());
  queue_.pop_front();
  const auto t0 = std::chrono::steady_clock::now();
  p->result.wait();
  if (waited_s)
    *waited_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return p->result.get();
}

}  // namespace vidfuse::data
