#include "vidfuse/core/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <exception>

namespace vidfuse {

int resolve_thread_count(int requested) {
  if (requested > 0) return requested;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

ThreadPool::ThreadPool(int threads) {
  const int n = resolve_thread_count(threads);
  threads_.reserve(n);
  for (int i = 0; i < n; ++i) threads_.emplace_back([this] { run(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (auto& t : threads_) t.join();
}

void ThreadPool::enqueue(std::function<void()> job) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
  }
  wake_.notify_one();
}

void ThreadPool::run() {
  while (true) {
    std::function<void()> job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, nothing left
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    job();  // submit() wraps tasks in a packaged_task: exceptions land in their future
  }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t)>& body) {
  if (n <= 0) return;
  std::atomic<int64_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex error_mutex;
  std::exception_ptr error;
  auto loop = [&] {
    while (!failed) {
      const int64_t i = next++;
      if (i >= n) return;
      try {
        body(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(error_mutex);
        if (!error) error = std::current_exception();
        failed = true;
      }
    }
  };
  // The caller takes a share too, so this finishes even when every worker is busy elsewhere.
  const int64_t helpers = std::min<int64_t>(size(), n - 1);
  std::vector<std::future<void>> done;
  done.reserve(helpers);
  for (int64_t k = 0; k < helpers; ++k) done.push_back(submit(loop));
  loop();
  for (auto& d : done) d.wait();  // `loop` refers to this frame: wait for every helper
  if (error) std::rethrow_exception(error);
}

void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& body) {
  const int64_t total = std::min<int64_t>(resolve_thread_count(threads), n);
  if (total <= 1) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
  ThreadPool pool(static_cast<int>(total - 1));
  pool.parallel_for(n, body);
}

}  // namespace vidfuse
