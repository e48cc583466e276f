#include "vidfuse/data/batch_loader.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <thread>

#include "vidfuse/core/error.h"
#include "vidfuse/core/shape_text.h"
#include "vidfuse/data/store_dataset.h"

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
  std::vector<Sample> samples;  // collated path
  Batch batch;                  // direct path: the slots, allocated up front
  std::vector<int64_t> labels;
  bool direct = false;
  std::atomic<int64_t> left{0};
  std::mutex error_mutex;
  std::exception_ptr error;
  std::promise<Batch> done;
  std::future<Batch> result;
};

// The shapes and dtypes of a batch's fields (from the first batch), to allocate the next ones.
struct BatchLoader::Layout {
  torch::Tensor semantic, semantic_cls, motion;  // one sample's, empty-data stand-ins
};

namespace {

torch::Tensor slots_like(const torch::Tensor& one, int64_t n, bool pin) {
  if (!one.defined()) return {};
  std::vector<int64_t> sizes{n};
  for (int64_t d : one.sizes()) sizes.push_back(d);
  return torch::empty(sizes, torch::TensorOptions().dtype(one.scalar_type()).pinned_memory(pin));
}

// A sample that did not fit the direct path, copied into its slots (or an error naming it).
void copy_into_slots(const Sample& s, int64_t index, Sample& slot) {
  const std::pair<const torch::Tensor*, torch::Tensor*> fields[] = {
      {&s.semantic, &slot.semantic},
      {&s.semantic_cls, &slot.semantic_cls},
      {&s.motion, &slot.motion}};
  const char* names[] = {"semantic", "semantic_cls", "motion"};
  for (size_t k = 0; k < 3; ++k) {
    const torch::Tensor& from = *fields[k].first;
    torch::Tensor& to = *fields[k].second;
    if (from.defined() != to.defined() || (from.defined() && from.sizes() != to.sizes()))
      throw Error("dataset sample " + std::to_string(index) +
                  (s.source.empty() ? "" : " (" + s.source + ")") + ": " + names[k] +
                  " has shape " + shape_text(from) + " but the batch's other samples have " +
                  shape_text(to) + " (all samples of a batch must have the same shape)");
    if (from.defined()) to.copy_(from);
  }
}

}  // namespace

BatchLoader::BatchLoader(std::shared_ptr<const Dataset> data, BatchLoaderOptions options)
    : data_(std::move(data)),
      options_(options),
      layout_mutex_(std::make_shared<std::mutex>()),
      layout_(std::make_shared<std::shared_ptr<const Layout>>()) {
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
  const int64_t n = static_cast<int64_t>(p->indices.size());
  p->left = n;
  p->labels.assign(p->indices.size(), -1);
  p->result = p->done.get_future();
  queue_.push_back(p);
  const bool pin = options_.pin_memory;
  const auto* store = dynamic_cast<const StoreDataset*>(data_.get());
  std::shared_ptr<const Layout> layout;
  {
    std::lock_guard<std::mutex> lock(*layout_mutex_);
    layout = *layout_;
  }
  if (store && store->stored_dtype() && layout) {
    p->direct = true;
    // A spare is free when only spares_ holds it (the batch it went out with was dropped). Pinned
    // buffers are never recycled here: a non-blocking copy may still be reading one, and LibTorch's
    // pinned allocator already caches them with that in mind.
    auto free_buffer = [&](const torch::Tensor& t) {
      return !t.defined() || (t.use_count() == 1 && t.storage().use_count() == 1);
    };
    for (const auto& spare : spares_)
      if (!pin && spare.batch_size() == n && free_buffer(spare.semantic) &&
          free_buffer(spare.semantic_cls) && free_buffer(spare.motion)) {
        p->batch.input = spare;
        break;
      }
    if (!p->batch.input.semantic.defined() && !p->batch.input.motion.defined()) {
      p->batch.input.semantic = slots_like(layout->semantic, n, pin);
      p->batch.input.semantic_cls = slots_like(layout->semantic_cls, n, pin);
      p->batch.input.motion = slots_like(layout->motion, n, pin);
      if (!pin && static_cast<int>(spares_.size()) < options_.prefetch + 2)
        spares_.push_back(p->batch.input);
    }
  } else {
    p->samples.resize(p->indices.size());
  }
  for (size_t i = 0; i < p->indices.size(); ++i) {
    pool_->submit([p, i, pin, store, data = data_.get(), layout_mutex = layout_mutex_,
                   layout_slot = layout_] {
      const int64_t index = p->indices[i];
      try {
        if (p->direct) {
          Sample slot;
          auto row = [&](const torch::Tensor& t) { return t.defined() ? t[int64_t(i)] : t; };
          slot.semantic = row(p->batch.input.semantic);
          slot.semantic_cls = row(p->batch.input.semantic_cls);
          slot.motion = row(p->batch.input.motion);
          if (store->read_into(index, slot)) {
            p->labels[i] = slot.label;
          } else {
            const Sample s = data->get(index);
            copy_into_slots(s, index, slot);
            p->labels[i] = s.label;
          }
        } else {
          p->samples[i] = data->get(index);
        }
      } catch (...) {
        std::lock_guard<std::mutex> lock(p->error_mutex);
        if (!p->error) p->error = std::current_exception();
      }
      if (p->left.fetch_sub(1) != 1) return;
      // The last read of the batch finishes it (on this reader, not on the training thread).
      if (p->error) return p->done.set_exception(p->error);
      try {
        if (p->direct) {
          p->batch.labels = torch::tensor(p->labels, torch::kLong);
          p->batch.indices = p->indices;  // errors about the batch name its samples
          if (pin) p->batch.labels = p->batch.labels.pin_memory();
          p->done.set_value(std::move(p->batch));
          return;
        }
        Batch b = pin ? collate_pinned(p->samples, p->indices) : collate(p->samples, p->indices);
        {
          std::lock_guard<std::mutex> lock(*layout_mutex);
          if (!*layout_slot) {
            auto l = std::make_shared<Layout>();
            const Sample& s = p->samples.front();
            auto meta = [](const torch::Tensor& t) {
              return t.defined() ? torch::empty(t.sizes(), t.options().device(torch::kCPU)) : t;
            };
            l->semantic = meta(s.semantic);
            l->semantic_cls = meta(s.semantic_cls);
            l->motion = meta(s.motion);
            *layout_slot = l;
          }
        }
        p->samples.clear();
        p->done.set_value(std::move(b));
      } catch (...) {
        p->done.set_exception(std::current_exception());
      }
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
