// VideoLoader*: ordering, the capacity bound, per-item errors and the consumer-wait measurement.
#include <atomic>
#include <chrono>
#include <set>
#include <thread>

#include "test_video_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/prefetch_loader.h"

using namespace vidfuse;
using namespace vidfuse::test;
using namespace vidfuse::io;
using namespace std::chrono_literals;

namespace {
// Counts items that exist (being prepared or waiting) to check the bound on memory.
struct Tracker {
  std::atomic<int> alive{0};
  std::atomic<int> peak{0};
  void start() {
    const int now = ++alive;
    int p = peak.load();
    while (now > p && !peak.compare_exchange_weak(p, now)) {
    }
  }
};
}  // namespace

TEST(VideoLoader, OrderedDeliveryWithBoundedPrefetch) {
  Tracker tracker;
  LoaderOptions o;
  o.workers = 3;
  o.capacity = 4;
  o.ordered = true;
  PrefetchLoader<double> loader(
      20,
      [&](int64_t i) {
        tracker.start();
        std::this_thread::sleep_for(std::chrono::milliseconds((i * 7) % 5));  // finish out of order
        return static_cast<double>(i);
      },
      o);
  int64_t expected = 0;
  while (auto item = loader.next()) {
    EXPECT_EQ(item->index, expected);
    EXPECT_TRUE(item->ok());
    EXPECT_EQ(item->value, static_cast<double>(expected));
    --tracker.alive;
    std::this_thread::sleep_for(1ms);
    ++expected;
  }
  EXPECT_EQ(expected, 20);
  // At most `capacity` prepared or waiting, plus the one the consumer is holding.
  EXPECT_LE(tracker.peak.load(), 4 + 1);
  EXPECT_FALSE(loader.next().has_value());
  EXPECT_EQ(loader.stats().delivered, 20);
}

TEST(VideoLoader, UnorderedDeliversEachItemOnce) {
  LoaderOptions o;
  o.workers = 4;
  o.capacity = 2;
  o.ordered = false;
  PrefetchLoader<int64_t> loader(
      15,
      [](int64_t i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(15 - i));
        return i;
      },
      o);
  std::set<int64_t> seen;
  while (auto item = loader.next()) {
    EXPECT_EQ(item->value, item->index);
    EXPECT_TRUE(seen.insert(item->index).second);
  }
  EXPECT_EQ(seen.size(), 15u);
}

TEST(VideoLoader, AFailingItemIsAResultAndTheLoaderCarriesOn) {
  auto& vids = TestVideos::get();
  ScratchDir dir;
  write_bytes(dir / "broken.mp4", "definitely not a video");
  const std::vector<std::string> paths = {vids["h264"].path, dir / "broken.mp4", vids["vp9"].path,
                                          dir / "missing.webm", vids["mpeg4"].path};
  SamplingSpec spec;
  spec.kind = SamplingSpec::Kind::Segment;
  spec.num_segments = 4;
  LoaderOptions o;
  o.workers = 2;
  o.capacity = 2;
  PrefetchLoader<Clip> loader(static_cast<int64_t>(paths.size()),
                              clip_task(paths, spec, TransformPreset::DINOv3), o);
  std::vector<bool> ok;
  while (auto item = loader.next()) {
    ok.push_back(item->ok());
    if (item->ok()) {
      EXPECT_EQ(item->value.frames.sizes(), (std::vector<int64_t>{4, 3, 224, 224}));
      EXPECT_EQ(item->value.indices.size(), 4u);
    } else {
      EXPECT_NE(item->error.find(paths[item->index]), std::string::npos) << item->error;
      EXPECT_FALSE(item->value.frames.defined());
    }
  }
  EXPECT_EQ(ok, (std::vector<bool>{true, false, true, false, true}));
  EXPECT_EQ(loader.stats().failed, 2);
}

TEST(VideoLoader, MeasuresHowLongTheConsumerWaits) {
  // Slow producer, fast consumer: the consumer mostly waits.
  {
    LoaderOptions o;
    o.workers = 1;
    PrefetchLoader<int> loader(
        6,
        [](int64_t) {
          std::this_thread::sleep_for(20ms);
          return 0;
        },
        o);
    while (loader.next()) {
    }
    const LoaderStats s = loader.stats();
    EXPECT_GT(s.wait_seconds, 0.08);
    EXPECT_GT(s.idle_fraction(), 0.6);
  }
  // Fast producer, slow consumer: after the first item, data is always ready.
  {
    LoaderOptions o;
    o.workers = 2;
    o.capacity = 3;
    PrefetchLoader<int> loader(
        6,
        [](int64_t) {
          std::this_thread::sleep_for(2ms);
          return 0;
        },
        o);
    while (loader.next()) std::this_thread::sleep_for(25ms);
    const LoaderStats s = loader.stats();
    EXPECT_LT(s.idle_fraction(), 0.2);
    EXPECT_GT(s.elapsed_seconds, 0.1);
  }
}

TEST(VideoLoader, StopsCleanlyWhenAbandoned) {
  std::atomic<int> started{0};
  {
    LoaderOptions o;
    o.workers = 2;
    o.capacity = 2;
    PrefetchLoader<int> loader(
        1000,
        [&](int64_t) {
          ++started;
          std::this_thread::sleep_for(1ms);
          return 0;
        },
        o);
    ASSERT_TRUE(loader.next().has_value());
  }
  EXPECT_LE(started.load(), 4);
}
