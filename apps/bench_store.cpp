// `vidfuse bench store [--dir D] [--videos 2000] [--json]`: how fast training reads a feature
// store of SSv2 shape (pool 2: 16x7x7x768 + 16x768 DINOv3 tokens, 1024x8x7x7 I3D Mixed_5c, fp16;
// 2.03 MB per video), loose and packed, the way the trainer reads it (StoreDataset in the stored
// dtype, shuffled batches of 64 through the BatchLoader's parallel readers), cold (every file's
// pages dropped first with posix_fadvise) and warm, next to the ceilings measured in the same run:
// the raw sequential read rate of the same bytes (cold) and the memory copy rate of as many threads
// as the loader has readers (warm). The
// synthetic store is generated under --dir once and reused.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/data/batch_loader.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_dataset.h"
#include "vidfuse/data/store_pack.h"
#include "vidfuse/train/trainer.h"

namespace vidfuse::cli {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kSsv2Videos = 220847;       // train + validation + test
constexpr int64_t kSsv2TrainVideos = 168913;  // one training epoch

struct StoreBenchArgs {
  std::string dir = (fs::temp_directory_path() / "vidfuse-bench-store").string();
  int64_t videos = 2000, batch = 64, readers = 0, prefetch = 4;
  std::string shard_size = "1GB";
  bool json = false;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The store extract would write for `n` SSv2 videos at pool 2 (random features; each video's
// differ). Reused when complete.
void ensure_loose(const std::string& dir, int64_t n) {
  const std::string done = (fs::path(dir) / ".bench-complete").string();
  if (fs::exists(done) && static_cast<int64_t>(data::list_loose_ids(dir).size()) == n) return;
  fs::create_directories(dir);
  data::ExtractRecipe recipe;
  recipe.pool = 2;
  data::write_extract_recipe(dir, recipe);
  torch::manual_seed(0);
  const auto patch = torch::randn({16, 7, 7, 768}).to(torch::kHalf);
  const auto mixed = torch::randn({1024, 8, 7, 7}).to(torch::kHalf);
  for (int64_t i = 0; i < n; ++i) {
    const double shift = static_cast<double>(i) / static_cast<double>(n);
    weights::TensorMap t = {{"semantic.cls", torch::randn({16, 768}).to(torch::kHalf)},
                            {"semantic.patch", patch + shift},
                            {"semantic.times", torch::linspace(0, 4, 16, torch::kFloat64)},
                            {"motion.mixed_5c", mixed - shift},
                            {"motion.features", torch::randn({1024}).to(torch::kHalf)},
                            {"motion.times", torch::linspace(0, 2.56, 64, torch::kFloat64)}};
    char id[32];
    std::snprintf(id, sizeof(id), "%06lld", static_cast<long long>(i));
    data::write_store_file(dir, id, t, {{"streams", "semantic,motion"}});
  }
  std::ofstream(done) << n << "\n";
}

// Every regular file under `dir` (the bytes a layout consists of).
std::vector<std::string> files_of(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out.push_back(e.path().string());
  return out;
}

// Drops the files' pages from the page cache (flushing dirty ones first, which fadvise would
// skip): the next read comes from the device.
void evict(const std::vector<std::string>& files) {
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// Reads the files once, front to back, so that a warm epoch finds them in the page cache, and
// returns the share of their pages resident afterwards (mincore): on a machine short of memory
// (or shared) a "warm" figure is only as warm as this says.
double warm_up(const std::vector<std::string>& files) {
  std::vector<char> buf(8 << 20);
  double resident = 0, total = 0;
  const long page = ::sysconf(_SC_PAGESIZE);
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    while (::read(fd, buf.data(), buf.size()) > 0) {
    }
    ::close(fd);
  }
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    const size_t size = static_cast<size_t>(::lseek(fd, 0, SEEK_END));
    if (size > 0) {
      void* p = ::mmap(nullptr, size, PROT_READ, MAP_SHARED, fd, 0);
      if (p != MAP_FAILED) {
        std::vector<unsigned char> vec((size + page - 1) / page);
        if (::mincore(p, size, vec.data()) == 0)
          for (unsigned char v : vec) resident += (v & 1);
        total += static_cast<double>(vec.size());
        ::munmap(p, size);
      }
    }
    ::close(fd);
  }
  return total > 0 ? resident / total : 0;
}

struct ReadResult {
  double seconds = 0, bytes = 0, samples = 0, wait_share = 0;
  double resident = -1;  // warm runs: share of the files' pages in the page cache before
  double gb_per_s() const { return bytes / seconds / 1e9; }
  double samples_per_s() const { return samples / seconds; }
};

// One epoch over the store as the trainer reads it: shuffled batches through the loader.
// The same dataset and loader serve the cold and the warm epoch, as in training, where one loader
// lives for the whole run: the dataset's first read of each video also checks the values are
// finite (later epochs skip that), and the loader's batch buffers, first touched in the cold
// epoch, are reused in the warm one (a fresh loader per epoch would charge ~0.8 GB of first-touch
// page faults to a 4 GB warm epoch, which a training run pays once).
ReadResult read_epoch(const std::shared_ptr<data::StoreDataset>& ds, data::BatchLoader& loader,
                      const StoreBenchArgs& a, double bytes_per_video) {
  const auto t0 = std::chrono::steady_clock::now();
  const auto perm = train::epoch_permutation(ds->size(), 0, 0);
  const int64_t batches = ds->size() / a.batch;
  int64_t scheduled = 0;
  double wait = 0, checksum = 0;
  for (int64_t b = 0; b < batches; ++b) {
    while (scheduled < batches && !loader.full()) {
      loader.schedule(std::vector<int64_t>(perm.begin() + scheduled * a.batch,
                                           perm.begin() + (scheduled + 1) * a.batch));
      ++scheduled;
    }
    double w = 0;
    const data::Batch batch = loader.next(&w);
    wait += w;
    checksum += static_cast<double>(batch.labels.numel());  // the batch is used
  }
  ReadResult r;
  r.seconds = seconds_since(t0);
  r.samples = checksum;
  r.bytes = r.samples * bytes_per_video;
  r.wait_share = wait / r.seconds;
  return r;
}

// The ceiling for cold reads: the same bytes read front to back, one stream, 8 MB at a time.
double sequential_read_gb_per_s(const std::vector<std::string>& files) {
  std::vector<char> buf(8 << 20);
  double bytes = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const auto& f : files) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail_file(f, std::string("cannot open: ") + std::strerror(errno));
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (ssize_t n; (n = ::read(fd, buf.data(), buf.size())) > 0;) bytes += static_cast<double>(n);
    ::close(fd);
  }
  return bytes / seconds_since(t0) / 1e9;
}

// The ceiling for warm reads: the same bytes copied in memory, in the loader's pieces (one video,
// 2 MB) by as many threads as it has readers, from and into buffers touched beforehand (GB copied
// per second, all threads). Measured over the same volume as an epoch, so a shared machine's
// load weighs on the ceiling as on the reads.
double memcpy_gb_per_s(int threads, double total_bytes, size_t piece) {
  const size_t ring = 32;  // pieces per thread's buffers (64 MB): beyond the caches
  std::vector<std::vector<char>> src(threads, std::vector<char>(ring * piece, 1)),
      dst(threads, std::vector<char>(ring * piece, 0));
  const int64_t pieces = static_cast<int64_t>(total_bytes / static_cast<double>(piece) / threads);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int64_t k = 0; k < pieces; ++k)
        std::memcpy(dst[t].data() + (k % ring) * piece, src[t].data() + (k % ring) * piece, piece);
    });
  for (auto& th : pool) th.join();
  const double s = seconds_since(t0);
  for (int t = 0; t < threads; ++t)
    if (dst[t][piece / 2] != 1) throw Error("bench store: memcpy check failed");
  return static_cast<double>(pieces) * static_cast<double>(piece) * threads / s / 1e9;
}

int run_store_bench(const StoreBenchArgs& a) {
  if (a.videos < a.batch) throw Error("bench store: --videos must be at least --batch");
  const std::string loose = (fs::path(a.dir) / "loose").string();
  const std::string packed = (fs::path(a.dir) / "packed").string();
  auto t0 = std::chrono::steady_clock::now();
  ensure_loose(loose, a.videos);
  const double make_s = seconds_since(t0);
  data::PackOptions po;
  po.shard_bytes = data::parse_byte_size(a.shard_size, "--shard-size");
  t0 = std::chrono::steady_clock::now();
  const data::PackSummary ps = data::pack_store(loose, packed, po);
  const double pack_s = seconds_since(t0);

  data::Manifest m;
  for (const auto& id : data::list_loose_ids(loose)) m.videos.push_back({id, "", 0});
  const auto loose_files = files_of(loose), packed_files = files_of(packed);
  double video_bytes = 0;
  for (const auto& id : data::list_loose_ids(loose))
    video_bytes += static_cast<double>(fs::file_size(data::store_file_path(loose, id)));
  const double per_video = video_bytes / static_cast<double>(m.videos.size());
  std::vector<std::string> shards;
  for (const auto& f : packed_files)
    if (fs::path(f).extension() == ".tar") shards.push_back(f);

  auto open = [&](const std::string& store) {
    return std::make_shared<data::StoreDataset>(store, m, true, true, /*stored_dtype=*/true);
  };
  data::BatchLoaderOptions lo;
  lo.readers = static_cast<int>(a.readers);
  lo.prefetch = static_cast<int>(a.prefetch);
  const auto loose_set = open(loose);
  auto loose_loader = std::make_unique<data::BatchLoader>(loose_set, lo);
  evict(loose_files);
  const ReadResult loose_cold = read_epoch(loose_set, *loose_loader, a, per_video);
  double resident = warm_up(loose_files);
  ReadResult loose_warm = read_epoch(loose_set, *loose_loader, a, per_video);
  loose_warm.resident = resident;
  loose_loader.reset();  // its buffers go before the packed store's loader takes its own
  const auto packed_set = open(packed);
  data::BatchLoader packed_loader(packed_set, lo);
  evict(packed_files);
  const ReadResult packed_cold = read_epoch(packed_set, packed_loader, a, per_video);
  resident = warm_up(packed_files);
  ReadResult packed_warm = read_epoch(packed_set, packed_loader, a, per_video);
  packed_warm.resident = resident;
  evict(shards);
  const double raw = sequential_read_gb_per_s(shards);
  const int readers = a.readers > 0 ? static_cast<int>(a.readers) : data::default_readers();
  const double copy = memcpy_gb_per_s(readers, packed_warm.bytes, static_cast<size_t>(per_video));

  const double ssv2_bytes = per_video * kSsv2Videos;
  const int64_t ssv2_shards =
      static_cast<int64_t>(std::ceil(ssv2_bytes / static_cast<double>(po.shard_bytes)));
  auto row = [&](const ReadResult& r, double ceiling) {
    return nlohmann::json{{"gb_per_s", r.gb_per_s()},
                          {"samples_per_s", r.samples_per_s()},
                          {"seconds", r.seconds},
                          {"data_wait_share", r.wait_share},
                          {"ratio_to_ceiling", r.gb_per_s() / ceiling},
                          {"ssv2_epoch_s", kSsv2TrainVideos / r.samples_per_s()},
                          {"resident_before", r.resident}};
  };
  nlohmann::json j = {
      {"bench", "store"},
      {"dir", a.dir},
      {"videos", a.videos},
      {"bytes_per_video", per_video},
      {"batch", a.batch},
      {"readers", readers},
      {"prefetch", a.prefetch},
      {"shard_bytes", po.shard_bytes},
      {"shards", shards.size()},
      {"generate_s", make_s},
      {"pack_s", pack_s},
      {"packed_now", ps.packed},
      {"raw_sequential_read_gb_per_s", raw},
      {"memcpy_gb_per_s", copy},
      {"loose_cold", row(loose_cold, raw)},
      {"loose_warm", row(loose_warm, copy)},
      {"packed_cold", row(packed_cold, raw)},
      {"packed_warm", row(packed_warm, copy)},
      {"ssv2_videos", kSsv2Videos},
      {"ssv2_train_videos", kSsv2TrainVideos},
      {"ssv2_files_loose", kSsv2Videos + 3},       // + index.json, extract.json, failures.jsonl
      {"ssv2_files_packed", 2 * ssv2_shards + 2},  // shards + sidecars, shards.json, extract.json
      {"ssv2_store_gb", ssv2_bytes / 1e9},
      {"cpu_isa", cpu_isa()},
      {"peak_rss_gb", peak_rss_gb()}};
  if (a.json) {
    std::cout << j.dump() << std::endl;
    return 0;
  }
  std::printf("store of %lld SSv2-shaped videos (%.2f MB each) under %s; %zu shard(s)\n",
              static_cast<long long>(a.videos), per_video / 1e6, a.dir.c_str(), shards.size());
  std::printf("  ceilings: sequential read (cold) %.2f GB/s, memcpy %.2f GB/s\n", raw, copy);
  for (const auto& [name, r, ceiling] :
       {std::tuple{"loose  cold", loose_cold, raw}, std::tuple{"loose  warm", loose_warm, copy},
        std::tuple{"packed cold", packed_cold, raw}, std::tuple{"packed warm", packed_warm, copy}})
    std::printf("  %s: %.2f GB/s (%.0f samples/s) = %.2f of the ceiling; SSv2 epoch %.0f s%s\n",
                name, r.gb_per_s(), r.samples_per_s(), r.gb_per_s() / ceiling,
                kSsv2TrainVideos / r.samples_per_s(),
                r.resident >= 0
                    ? (" (" + std::to_string(int(100 * r.resident)) + "% cached before)").c_str()
                    : "");
  std::printf("  SSv2 (%lld videos, %.0f GB): %lld files loose, %lld packed\n",
              static_cast<long long>(kSsv2Videos), ssv2_bytes / 1e9,
              static_cast<long long>(kSsv2Videos + 3), static_cast<long long>(2 * ssv2_shards + 2));
  return 0;
}

VIDFUSE_BENCH(
    "store",
    "Feature store read rate, loose vs packed, cold vs warm, next to disk and memcpy "
    "ceilings",
    [](CLI::App& sub) {
      auto a = std::make_shared<StoreBenchArgs>();
      sub.add_flag("--json", a->json, "One JSON object");
      sub.add_option("--dir", a->dir, "Where the synthetic store is made (reused)")
          ->capture_default_str();
      sub.add_option("--videos", a->videos, "Videos in the synthetic store")->capture_default_str();
      sub.add_option("--batch", a->batch, "Batch size")->capture_default_str();
      sub.add_option("--readers", a->readers, "Reading threads (0: half the cores)")
          ->capture_default_str();
      sub.add_option("--prefetch", a->prefetch, "Batches read ahead")->capture_default_str();
      sub.add_option("--shard-size", a->shard_size, "Packed shard size (e.g. 1GB, 256MB)")
          ->capture_default_str();
      return [a] { return run_store_bench(*a); };
    });

}  // namespace
}  // namespace vidfuse::cli
