#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vidfuse/core/thread_pool.h"

namespace {

using vidfuse::ThreadPool;

TEST(ThreadPool, ResolvesTheThreadCount) {
  EXPECT_EQ(vidfuse::resolve_thread_count(3), 3);
  EXPECT_GE(vidfuse::resolve_thread_count(0), 1);
  EXPECT_GE(vidfuse::resolve_thread_count(-2), 1);
  EXPECT_EQ(ThreadPool(2).size(), 2);
}

TEST(ThreadPool, SubmitReturnsResultsAndExceptions) {
  ThreadPool pool(2);
  auto a = pool.submit([] { return 6 * 7; });
  auto b = pool.submit([]() -> int { throw std::runtime_error("task failed"); });
  EXPECT_EQ(a.get(), 42);
  EXPECT_THROW_WITH(b.get(), "task failed");
}

TEST(ThreadPool, DestructorRunsWhatIsQueued) {
  std::atomic<int> ran{0};
  {
    ThreadPool pool(1);
    for (int i = 0; i < 20; ++i) pool.submit([&ran] { ++ran; });
  }
  EXPECT_EQ(ran, 20);
}

TEST(ThreadPool, ParallelForVisitsEveryIndexOnce) {
  for (int threads : {1, 3, 8}) {
    std::mutex mu;
    std::multiset<int64_t> seen;
    std::set<std::thread::id> ids;
    vidfuse::parallel_for(100, threads, [&](int64_t i) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      std::lock_guard<std::mutex> lock(mu);
      seen.insert(i);
      ids.insert(std::this_thread::get_id());
    });
    ASSERT_EQ(seen.size(), 100u) << threads << " threads";
    for (int64_t i = 0; i < 100; ++i) EXPECT_EQ(seen.count(i), 1u);
    EXPECT_LE(ids.size(), static_cast<size_t>(threads));
  }
  int calls = 0;
  vidfuse::parallel_for(0, 4, [&](int64_t) { ++calls; });
  EXPECT_EQ(calls, 0);
}

TEST(ThreadPool, ParallelForStopsAtTheFirstErrorAndRethrowsIt) {
  for (int threads : {1, 4}) {
    std::atomic<int64_t> started{0};
    EXPECT_THROW_WITH(
        vidfuse::parallel_for(10000, threads,
                              [&](int64_t i) {
                                ++started;
                                if (i == 5) throw std::runtime_error("index 5 broke");
                                // Real work takes time: on a loaded machine the
                                // failing thread may wait for a core, and empty
                                // bodies would all be done before it runs.
                                std::this_thread::sleep_for(std::chrono::microseconds(200));
                              }),
        "index 5 broke");
    EXPECT_LT(started, 10000) << threads << " threads";
  }
  // A pool survives a failed loop and runs the next one.
  ThreadPool pool(3);
  EXPECT_THROW(pool.parallel_for(50,
                                 [](int64_t i) {
                                   if (i == 0) throw std::runtime_error("first");
                                 }),
               std::runtime_error);
  std::atomic<int64_t> sum{0};
  pool.parallel_for(50, [&](int64_t i) { sum += i; });
  EXPECT_EQ(sum, 49 * 50 / 2);
}

}  // namespace
