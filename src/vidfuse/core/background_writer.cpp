#include "vidfuse/core/background_writer.h"

namespace vidfuse {

BackgroundWriter::BackgroundWriter(size_t capacity)
    : capacity_(capacity < 1 ? 1 : capacity), thread_([this] { run(); }) {}

BackgroundWriter::~BackgroundWriter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BackgroundWriter::rethrow_error_locked() {
  if (error_) std::rethrow_exception(error_);
}

void BackgroundWriter::submit(std::function<void()> job) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return error_ || jobs_.size() < capacity_; });
  rethrow_error_locked();
  jobs_.push_back(std::move(job));
  changed_.notify_all();
}

void BackgroundWriter::finish() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return error_ || (jobs_.empty() && !running_job_); });
  rethrow_error_locked();
}

void BackgroundWriter::run() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    changed_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
    if (jobs_.empty()) return;  // stopping, and everything queued has run
    std::function<void()> job = std::move(jobs_.front());
    jobs_.pop_front();
    changed_.notify_all();  // a slot is free
    if (error_) continue;   // after a failure the rest is dropped
    running_job_ = true;
    lock.unlock();
    std::exception_ptr error;
    try {
      job();
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    running_job_ = false;
    if (error && !error_) error_ = error;
    changed_.notify_all();
  }
}

}  // namespace vidfuse
