// The packed store layout (data/store_pack.h) and reading either layout (data/store_reader.h,
// StoreDataset, verify_store): packing, resuming a stopped pack, parts packed separately, equal
// samples from either layout, every kind of damage named, and the batch loader.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/batch_loader.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_dataset.h"
#include "vidfuse/data/store_pack.h"
#include "vidfuse/data/store_reader.h"

namespace vidfuse {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using test::read_bytes;
using test::ScratchDir;
using test::write_bytes;

// One tiny video's features, as extract writes them (fp16 features, f64 times).
weights::TensorMap features(int64_t seed, int64_t channels = 8) {
  torch::manual_seed(static_cast<uint64_t>(seed));
  return {{"semantic.cls", torch::randn({2, channels}).to(torch::kHalf)},
          {"semantic.patch", torch::randn({2, 3, 3, channels}).to(torch::kHalf)},
          {"semantic.times", torch::arange(2, torch::kFloat64)},
          {"motion.mixed_5c", torch::randn({8, 1, 2, 2}).to(torch::kHalf)},
          {"motion.features", torch::randn({8}).to(torch::kHalf)},
          {"motion.times", torch::arange(2, torch::kFloat64)}};
}

// A loose store of `n` videos (ids v00..), with the default recipe, and its manifest.
data::Manifest make_loose(const std::string& dir, int n) {
  fs::create_directories(dir);
  data::write_extract_recipe(dir, data::ExtractRecipe{});
  data::Manifest m;
  m.class_names = {"a", "b", "c"};
  for (int i = 0; i < n; ++i) {
    const std::string id = (i < 10 ? "v0" : "v") + std::to_string(i);
    data::write_store_file(dir, id, features(i), {{"streams", "semantic,motion"}});
    m.videos.push_back({id, "", i % 3});
  }
  return m;
}

data::PackOptions small_shards() {
  data::PackOptions o;
  o.shard_bytes = 6000;  // a few videos per shard
  return o;
}

void expect_same_samples(const data::StoreDataset& a, const data::StoreDataset& b) {
  ASSERT_EQ(a.size(), b.size());
  for (int64_t i = 0; i < a.size(); ++i) {
    const data::Sample x = a.get(i), y = b.get(i);
    EXPECT_EQ(x.label, y.label);
    EXPECT_TRUE(torch::equal(x.semantic, y.semantic)) << i;
    EXPECT_TRUE(torch::equal(x.semantic_cls, y.semantic_cls)) << i;
    EXPECT_TRUE(torch::equal(x.motion, y.motion)) << i;
  }
}

TEST(StorePack, PackedSamplesEqualLooseInBothDtypes) {
  ScratchDir d;
  const data::Manifest m = make_loose(d / "loose", 13);
  const data::PackSummary s = data::pack_store(d / "loose", d / "packed", small_shards());
  EXPECT_EQ(s.loose_videos, 13);
  EXPECT_EQ(s.packed, 13);
  EXPECT_GT(s.shards_written, 2);
  EXPECT_TRUE(s.index_written);
  EXPECT_TRUE(data::is_packed_store(d / "packed"));
  EXPECT_FALSE(data::is_packed_store(d / "loose"));
  // The recipe travels with the shards: predict's lookup reads it from either layout.
  EXPECT_EQ(data::recipe_fingerprint(d / "packed"), data::recipe_fingerprint(d / "loose"));
  EXPECT_NO_THROW(data::read_extract_recipe(d / "packed"));

  for (bool stored : {false, true}) {
    data::StoreDataset loose(d / "loose", m, true, true, stored);
    data::StoreDataset packed(d / "packed", m, true, true, stored);
    EXPECT_TRUE(packed.reader().packed());
    EXPECT_EQ(packed.missing(), 0);
    expect_same_samples(loose, packed);
    EXPECT_EQ(packed.get(0).semantic.scalar_type(), stored ? torch::kHalf : torch::kFloat);
  }
  // Each member is the loose file, byte for byte, where the index says and the tar headers agree.
  const data::StoreReader r(d / "packed");
  const data::PackedIndex& x = r.index();
  for (size_t s2 = 0; s2 < x.shards.size(); ++s2) {
    const auto members = data::read_tar_members(x.shard_path(s2));
    for (const auto& mem : members) {
      const std::string id = mem.name.substr(0, mem.name.size() - 12);
      const torch::Tensor bytes = r.read(id);
      EXPECT_EQ(std::string(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()),
                            static_cast<size_t>(bytes.numel())),
                read_bytes(data::store_file_path(d / "loose", id)));
      EXPECT_EQ(mem.offset % 512, 0u);
    }
  }
  // Both layouts verify complete; stats-style header reads work on members.
  for (const char* dir : {"loose", "packed"}) {
    const data::VerifyReport v = data::verify_store(d / dir, m);
    EXPECT_TRUE(v.ok()) << dir << (v.problems.empty() ? "" : v.problems.front());
    EXPECT_EQ(v.complete, 13);
    EXPECT_EQ(v.packed, std::string(dir) == "packed");
  }
  // Packing again does nothing and keeps the index.
  const data::PackSummary again = data::pack_store(d / "loose", d / "packed", small_shards());
  EXPECT_EQ(again.packed, 0);
  EXPECT_EQ(again.already_packed, 13);
}

TEST(StorePack, PartsPackDisjointlyAndAStoppedPackResumes) {
  ScratchDir d;
  const data::Manifest m = make_loose(d / "loose", 17);
  // Two processes' parts, the first stopped after one shard (as if killed), then rerun.
  data::PackOptions o = small_shards();
  o.parts = 2;
  o.part = 0;
  o.stop_after_shards = 1;
  const data::PackSummary stopped = data::pack_store(d / "loose", d / "packed", o);
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(stopped.shards_written, 1);
  EXPECT_FALSE(fs::exists(d / "packed/shards.json"));
  // A killed shard write leaves only a temp file and maybe its sidecar, never a shard.
  write_bytes(d / "packed/shard-0of2-00007.tar.tmp.99999.0", "half a shard");
  write_bytes(d / "packed/shard-0of2-00007.json", "{}");
  o.stop_after_shards = -1;
  o.part = 1;
  const data::PackSummary p1 = data::pack_store(d / "loose", d / "packed", o);
  o.part = 0;
  const data::PackSummary p0 = data::pack_store(d / "loose", d / "packed", o);
  EXPECT_EQ(p0.part_videos + p1.part_videos, 17);
  EXPECT_EQ(p0.already_packed, stopped.packed);
  EXPECT_EQ(p0.already_packed + p0.packed, p0.part_videos);
  EXPECT_FALSE(fs::exists(d / "packed/shard-0of2-00007.json"));  // the orphan sidecar is gone

  data::StoreDataset loose(d / "loose", m), packed(d / "packed", m);
  EXPECT_EQ(packed.missing(), 0);
  expect_same_samples(loose, packed);
  const data::VerifyReport v = data::verify_store(d / "packed", m);
  EXPECT_TRUE(v.ok());
  ASSERT_EQ(v.stale_temps.size(), 1u);  // reported, not counted against the store
  EXPECT_NE(v.stale_temps[0].find("shard-0of2-00007.tar.tmp."), std::string::npos);
}

// Runs `damage` on a fresh packed store, then expects opening it and verifying it to name `parts`.
template <class F>
void expect_damage_named(F damage, const std::vector<std::string>& parts, bool open_fails = true) {
  ScratchDir d;
  const data::Manifest m = make_loose(d / "loose", 9);
  data::pack_store(d / "loose", d / "packed", small_shards());
  const data::PackedIndex x = data::read_packed_index(d / "packed");
  damage(d / "packed", x);
  if (open_fails) {
    try {
      data::StoreDataset ds(d / "packed", m);
      for (int64_t i = 0; i < ds.size(); ++i) ds.get(i);
      ADD_FAILURE() << "expected an error naming " << parts.front();
    } catch (const Error& e) {
      for (const auto& p : parts)
        EXPECT_NE(std::string(e.what()).find(p), std::string::npos)
            << "message lacks '" << p << "': " << e.what();
    }
  }
  const data::VerifyReport v = data::verify_store(d / "packed", m);
  EXPECT_FALSE(v.ok());
  std::string all;
  for (const auto& p : v.problems) all += p + "\n";
  for (const auto& [id, e] : v.corrupt_files) all += e + "\n";
  for (const auto& p : parts)
    EXPECT_NE(all.find(p), std::string::npos) << "verify lacks '" << p << "': " << all;
}

TEST(StorePack, EveryDamageIsNamedByTheReaderAndByVerify) {
  // A truncated shard: the shard and the entry past its end.
  expect_damage_named(
      [](const std::string& dir, const data::PackedIndex& x) {
        fs::resize_file(x.shard_path(0), x.offset[0] + 100);
      },
      {"shard-0of1-00000.tar", "truncated"});
  // A missing shard.
  expect_damage_named(
      [](const std::string& dir, const data::PackedIndex& x) { fs::remove(x.shard_path(1)); },
      {"shard-0of1-00001.tar", "missing"});
  // An index that disagrees with its shard: entry v01 pointing at v00's bytes.
  expect_damage_named(
      [](const std::string& dir, const data::PackedIndex& x) {
        json j = json::parse(read_bytes(dir + "/shards.json"));
        j["offset"][1] = j["offset"][0];
        j["length"][1] = j["length"][0];
        write_bytes(dir + "/shards.json", j.dump());
      },
      {"shard-0of1-00000.tar", "v01", "disagrees"});
  // The same id listed twice.
  expect_damage_named(
      [](const std::string& dir, const data::PackedIndex& x) {
        json j = json::parse(read_bytes(dir + "/shards.json"));
        j["ids"][j["ids"].size() - 1] = "v00";
        write_bytes(dir + "/shards.json", j.dump());
      },
      {"v00", "listed twice", "shard-0of1-00000.tar"});
  // Shards of two recipes.
  expect_damage_named(
      [](const std::string& dir, const data::PackedIndex& x) {
        json j = json::parse(read_bytes(dir + "/shards.json"));
        j["shard_recipes"][1] = "0123456789abcdef";
        write_bytes(dir + "/shards.json", j.dump());
      },
      {"shard-0of1-00001.tar", "another recipe"});
  // A shard the index does not list (a stale index).
  expect_damage_named(
      [](const std::string& dir, const data::PackedIndex& x) {
        fs::copy_file(x.shard_path(0), dir + "/shard-5of9-00000.tar");
      },
      {"shard-5of9-00000.tar", "not in shards.json"});

  // Packing a store of another recipe into an existing packed store is refused.
  ScratchDir d;
  make_loose(d / "a", 3);
  make_loose(d / "b", 3);
  data::ExtractRecipe other;
  other.pool = 2;
  data::write_extract_recipe(d / "b", other);
  data::pack_store(d / "a", d / "packed");
  EXPECT_THROW_WITH(data::pack_store(d / "b", d / "packed"), "another recipe", "extract.json");
}

TEST(StoreVerify, NonFiniteOddShapesAndStaleTempsNamed) {
  ScratchDir d;
  data::Manifest m = make_loose(d / "s", 6);
  // v02: NaN in its patch tokens; v04: another model's width.
  auto bad = features(2);
  bad["semantic.patch"][0][1][1][3] = std::nan("");
  data::write_store_file(d / "s", "v02", bad, {{"streams", "semantic,motion"}});
  data::write_store_file(d / "s", "v04", features(4, 16), {{"streams", "semantic,motion"}});
  write_bytes(d / "s/v05.safetensors.tmp.4242.3", "killed writer");
  for (const bool packed : {false, true}) {
    std::string dir = d / "s";
    if (packed) {
      data::pack_store(d / "s", d / "p");
      dir = d / "p";
      write_bytes(d / "p/shards.json.tmp.77.0", "killed writer");
    }
    const data::VerifyReport v = data::verify_store(dir, m);
    EXPECT_FALSE(v.ok());
    ASSERT_EQ(v.nonfinite.size(), 1u);
    EXPECT_NE(v.nonfinite[0].first.find("v02.safetensors"), std::string::npos);
    EXPECT_EQ(v.nonfinite[0].second, "semantic.patch");
    ASSERT_EQ(v.odd_shapes.size(), 2u);  // its cls and patch tokens
    for (const auto& [where, what] : v.odd_shapes) {
      EXPECT_NE(where.find("v04.safetensors"), std::string::npos);
      EXPECT_NE(what.find("16"), std::string::npos) << what;
    }
    EXPECT_EQ(v.stale_temps.size(), 1u);
    // The quick check reads no data: it cannot see either.
    EXPECT_TRUE(data::verify_store(dir, m, {}, /*full=*/false).nonfinite.empty());

    // The reader refuses the NaN file, and the odd file is named when read after the others.
    data::StoreDataset ds(dir, m);
    ds.get(0);
    EXPECT_THROW_WITH(ds.get(2), "v02.safetensors", "semantic.patch", "NaN");
    EXPECT_THROW_WITH(ds.get(4), "v04.safetensors", "[2, 3, 3, 16]", "v00.safetensors");
  }
  // A batch of samples with different shapes names their files.
  data::Sample a, b;
  a.semantic = torch::zeros({2, 4});
  a.source = "x/a.safetensors";
  b.semantic = torch::zeros({2, 5});
  b.source = "x/b.safetensors";
  EXPECT_THROW_WITH(data::collate({a, b}, {0, 1}), "x/a.safetensors", "x/b.safetensors");
}

TEST(BatchLoader, ParallelReadsComeBackInOrderAndErrorsPropagate) {
  ScratchDir d;
  const data::Manifest m = make_loose(d / "s", 10);
  auto ds = std::make_shared<data::StoreDataset>(d / "s", m, true, true, true);
  data::BatchLoaderOptions o;
  o.readers = 3;
  o.prefetch = 2;
  data::BatchLoader loader(ds, o);
  const std::vector<std::vector<int64_t>> order = {{3, 1, 4}, {1, 5, 9}, {2, 6, 5}, {0, 7, 8}};
  size_t scheduled = 0;
  for (size_t k = 0; k < order.size(); ++k) {
    while (scheduled < order.size() && !loader.full()) loader.schedule(order[scheduled++]);
    double waited = -1;
    const data::Batch got = loader.next(&waited);
    EXPECT_GE(waited, 0);
    const data::Batch want = data::load_batch(*ds, order[k]);
    EXPECT_TRUE(torch::equal(got.input.semantic, want.input.semantic));
    EXPECT_TRUE(torch::equal(got.input.motion, want.input.motion));
    EXPECT_TRUE(torch::equal(got.labels, want.labels));
    EXPECT_EQ(got.input.semantic.scalar_type(), torch::kHalf);  // cast on the device, not here
    const auto dev = data::to_device(got.input, torch::kCPU);
    EXPECT_EQ(dev.semantic.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(dev.semantic, want.input.semantic.to(torch::kFloat)));
  }
  fs::remove(data::store_file_path(d / "s", "v06"));  // gone after the dataset was opened
  loader.schedule({5, 6});
  EXPECT_THROW_WITH(loader.next(), "v06.safetensors", "cannot open");
}

}  // namespace
}  // namespace vidfuse
