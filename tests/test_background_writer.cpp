#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

#include "test_util.h"
#include "vidfuse/core/background_writer.h"

namespace {

using vidfuse::BackgroundWriter;

TEST(BackgroundWriter, RunsJobsInOrderAndFinishWaitsForThem) {
  std::vector<int> done;
  BackgroundWriter writer(2);
  for (int i = 0; i < 10; ++i)
    writer.submit([&done, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      done.push_back(i);
    });
  writer.finish();
  EXPECT_EQ(done, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(BackgroundWriter, SubmitBlocksWhenTheQueueIsFull) {
  std::atomic<bool> release{false};
  std::atomic<int> started{0};
  BackgroundWriter writer(1);
  auto slow = [&] {
    ++started;
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  writer.submit(slow);  // running
  while (started == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  writer.submit(slow);  // queued: the queue is full now
  std::atomic<bool> third_queued{false};
  std::thread t([&] {
    writer.submit([] {});
    third_queued = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_FALSE(third_queued);
  release = true;
  t.join();
  EXPECT_TRUE(third_queued);
  writer.finish();
  EXPECT_EQ(started, 2);
}

TEST(BackgroundWriter, FirstErrorStopsTheQueueAndIsRethrown) {
  std::vector<int> done;
  BackgroundWriter writer(4);
  writer.submit([&] { done.push_back(1); });
  writer.submit([] { throw std::runtime_error("disk full: store/b.safetensors"); });
  EXPECT_THROW_WITH(
      {
        // Either this submit or finish() sees the error; the job after the failure never runs.
        writer.submit([&] { done.push_back(3); });
        writer.finish();
      },
      "disk full", "b.safetensors");
  EXPECT_EQ(done, (std::vector<int>{1}));
  EXPECT_THROW_WITH(writer.finish(), "disk full");
}

TEST(BackgroundWriter, DestructorRunsWhatIsQueued) {
  std::atomic<int> n{0};
  {
    BackgroundWriter writer(8);
    for (int i = 0; i < 5; ++i) writer.submit([&] { ++n; });
  }
  EXPECT_EQ(n, 5);
}

}  // namespace
