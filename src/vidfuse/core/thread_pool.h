// A fixed set of worker threads, and parallel-for over indices on top of it. One pool type for
// every place that fans work out over the cores (synthetic rendering, loaders, extraction).
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace vidfuse {

// `requested` when positive, else one per core; never below 1.
int resolve_thread_count(int requested);

class ThreadPool {
 public:
  // resolve_thread_count(threads) workers.
  explicit ThreadPool(int threads = 0);
  // Runs the tasks already queued, then joins the workers.
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(threads_.size()); }

  // Queues `task`; the future carries its result or its exception.
  template <class F>
  std::future<std::invoke_result_t<F&>> submit(F task) {
    using R = std::invoke_result_t<F&>;
    auto job = std::make_shared<std::packaged_task<R()>>(std::move(task));
    std::future<R> result = job->get_future();
    enqueue([job] { (*job)(); });
    return result;
  }

  // Calls body(i) for every i in [0, n) on the workers and the calling thread, handing the indices
  // out in increasing order. After a call throws no further index is started; once the running
  // calls are done, the first exception is rethrown here.
  void parallel_for(int64_t n, const std::function<void(int64_t)>& body);

 private:
  void enqueue(std::function<void()> job);
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

// ThreadPool::parallel_for on `threads` threads in all, the caller's among them (0 = one per
// core), never more than n: a pool is made for the call, and none when one thread will do.
void parallel_for(int64_t n, int threads, const std::function<void(int64_t)>& body);

}  // namespace vidfuse
