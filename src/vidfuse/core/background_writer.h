// Runs jobs (file writes) in order on one background thread, so the caller goes on computing while
// its outputs reach the disk (a store file's fsync alone can take a tenth of a second).
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace vidfuse {

class BackgroundWriter {
 public:
  // At most `capacity` jobs wait; submit() blocks beyond that, which bounds the memory they hold.
  explicit BackgroundWriter(size_t capacity = 2);
  // Finishes the queued jobs; an error nobody collected with finish() is dropped.
  ~BackgroundWriter();
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  // Queues `job`. After a job has thrown, later jobs are not run and this rethrows its error.
  void submit(std::function<void()> job);
  // Waits until every queued job has run; rethrows the first error.
  void finish();

 private:
  void run();
  void rethrow_error_locked();

  const size_t capacity_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> jobs_;
  bool running_job_ = false, stopping_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace vidfuse
