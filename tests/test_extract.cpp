// Extract* / Store*: dataset-scale feature extraction end to end on small generated videos (a few
// formats, one corrupt, one too short) with tiny random-weight models: the store is complete, the
// corrupt video is in failures.jsonl, features equal a direct forward on the same frames, an
// interrupted (and a kill -9'ed) run resumed equals an uninterrupted one, two shards equal one
// unsharded run, and an unwritable store stops the job cleanly.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "test_models_util.h"
#include "test_video_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_dataset.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/video_transforms.h"

using namespace vidfuse;
using namespace vidfuse::test;
namespace fs = std::filesystem;

namespace {

models::InceptionI3d small_i3d() {
  torch::manual_seed(11);
  models::I3DConfig c;
  c.num_classes = 10;
  models::InceptionI3d m(c);
  m->eval();
  m->fuse_for_inference(torch::kFloat32);
  return m;
}

// Small everything: 32² semantic input (2×2 patch grid), 4 frames; a 9-frame 193² motion clip
// (I3D's minimum). The semantic stream only; tests that run I3D name it too.
struct Small {
  data::ExtractRecipe recipe;
  data::ExtractRun run;
};
Small small_options(const std::string& store) {
  Small o;
  o.recipe.dinov3 = "tiny-dinov3";
  o.recipe.semantic_size = 32;
  o.recipe.semantic_sampling.num_segments = 4;
  o.recipe.motion_clip = 9;
  o.recipe.motion_short_side = 193;
  o.recipe.motion_crop = 193;
  o.run.store_dir = store;
  o.run.semantic_batch = 8;  // two videos per DINOv3 batch
  o.run.progress = data::ProgressMode::Off;
  o.run.workers = 2;
  return o;
}
data::ExtractSummary extract(const data::Manifest& m, const data::ExtractModels& models,
                             const Small& o) {
  return data::extract_features(m, models, o.recipe, o.run);
}

// The videos, written once per test binary: three formats, a 2-frame one, a corrupt one.
struct ExtractVideos {
  ScratchDir dir;
  data::Manifest manifest;  // all five
  std::string list_file;    // the same as a list file (for the CLI)
  static ExtractVideos& get() {
    static ExtractVideos v;
    return v;
  }

 private:
  ExtractVideos() {
    auto add = [&](const std::string& file, int64_t n, int64_t first, io::VideoWriterOptions o) {
      io::write_video(dir / file, code_frames(n, 48, 64, first), o);
      manifest.videos.push_back({fs::path(file).stem().string(), dir / file, first % 3});
    };
    io::VideoWriterOptions h264;
    h264.codec = "h264";
    h264.fps = 12;
    h264.gop = 6;
    add("clip_h264.mp4", 30, 0, h264);
    io::VideoWriterOptions vp9;
    vp9.codec = "vp9";
    vp9.fps = 12;
    add("clip_vp9.webm", 24, 100, vp9);
    io::VideoWriterOptions mpeg4;
    mpeg4.codec = "mpeg4";
    mpeg4.fps = 25;
    add("clip_mpeg4.avi", 20, 200, mpeg4);
    add("clip_short.mp4", 2, 300, h264);  // too short for every sampler: frames repeat
    write_bytes(dir / "clip_corrupt.mp4", "this is not a video at all");
    manifest.videos.push_back({"clip_corrupt", dir / "clip_corrupt.mp4", 1});
    manifest.class_names = {"a", "b", "c"};
    manifest.source = "test";
    list_file = dir / "list.txt";
    std::ofstream out(list_file);
    for (const auto& v : manifest.videos)
      out << fs::path(v.path).filename().string() << " " << v.label << "\n";
  }
};

data::Manifest only(const data::Manifest& m, const std::vector<std::string>& ids) {
  data::Manifest out = m;
  out.videos.clear();
  for (const auto& v : m.videos)
    if (std::find(ids.begin(), ids.end(), v.id) != ids.end()) out.videos.push_back(v);
  return out;
}

struct StoreContent {
  std::map<std::string, weights::TensorMap> tensors;
  std::map<std::string, weights::Metadata> metadata;
};

StoreContent read_store(const std::string& dir) {
  StoreContent c;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".safetensors") continue;
    const std::string id = e.path().stem().string();
    c.tensors[id] = weights::load_safetensors(e.path().string());
    c.metadata[id] = weights::load_safetensors_metadata(e.path().string());
  }
  return c;
}

void expect_same_store(const std::string& a, const std::string& b) {
  const StoreContent x = read_store(a), y = read_store(b);
  ASSERT_EQ(x.tensors.size(), y.tensors.size());
  for (const auto& [id, tx] : x.tensors) {
    ASSERT_TRUE(y.tensors.count(id)) << id;
    const auto& ty = y.tensors.at(id);
    ASSERT_EQ(tx.size(), ty.size()) << id;
    for (const auto& [name, t] : tx) {
      ASSERT_TRUE(ty.count(name)) << id << " " << name;
      EXPECT_TRUE(torch::equal(t, ty.at(name))) << id << " " << name;
    }
    EXPECT_EQ(x.metadata.at(id), y.metadata.at(id)) << id;
  }
}

std::vector<std::string> failure_ids(const std::string& store) {
  std::vector<std::string> ids;
  for (const auto& f : data::read_failures(store)) ids.push_back(f.id);
  return ids;
}

}  // namespace

TEST(Extract, StoreCompleteFailuresRecordedFeaturesEqualDirectForward) {
  auto& vids = ExtractVideos::get();
  ScratchDir store;
  data::ExtractModels models;
  models.dinov3 = tiny_dinov3();
  models.i3d = small_i3d();
  Small o = small_options(store / "s");
  o.recipe.i3d = "small-i3d";
  o.recipe.storage_dtype = torch::kFloat32;  // compare at full precision
  o.recipe.pool = 1;
  const data::ExtractSummary s = extract(vids.manifest, models, o);
  EXPECT_EQ(s.manifest_videos, 5);
  EXPECT_EQ(s.done, 4);
  EXPECT_EQ(s.failed, 1);
  EXPECT_EQ(s.skipped, 0);
  EXPECT_FALSE(s.stopped);

  // failures.jsonl names the corrupt one with its path and an error naming the file.
  const auto failures = data::read_failures(store / "s");
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_EQ(failures[0].id, "clip_corrupt");
  EXPECT_EQ(failures[0].path, vids.dir / "clip_corrupt.mp4");
  EXPECT_NE(failures[0].error.find("clip_corrupt.mp4"), std::string::npos) << failures[0].error;

  // The index and verify agree: four complete, the corrupt one missing with a recorded failure.
  std::ifstream index_in(store / "s/index.json");
  const auto index = nlohmann::json::parse(index_in);
  EXPECT_EQ(index["videos"].size(), 4u);
  const data::VerifyReport r = data::verify_store(store / "s", vids.manifest);
  EXPECT_EQ(r.complete, 4);
  EXPECT_EQ(r.missing, 1);
  EXPECT_EQ(r.failed_recorded, 1);
  EXPECT_EQ(r.corrupt, 0);
  EXPECT_FALSE(r.ok());

  // Features equal a direct forward of the same models on the same frames.
  torch::NoGradGuard no_grad;
  for (const auto& v : vids.manifest.videos) {
    if (v.id == "clip_corrupt") continue;
    SCOPED_TRACE(v.id);
    const auto file = weights::load_safetensors(data::store_file_path(store / "s", v.id));
    const auto meta = weights::load_safetensors_metadata(data::store_file_path(store / "s", v.id));
    auto src = io::open_frame_source(v.path);
    const auto& table = src->frames();
    const io::Sample sem =
        io::sample_frames(o.recipe.semantic_sampling, table.times, table.end_time);
    ASSERT_EQ(sem.indices.size(), 4u);
    const auto out = models.dinov3->forward(io::dinov3_transform(src->read(sem.indices), 32, 32));
    EXPECT_LT(rel_error(file.at("semantic.cls"), out.pooler_output), 1e-5);
    EXPECT_LT(rel_error(file.at("semantic.patch"), out.patch_tokens), 1e-5);
    EXPECT_EQ(file.at("semantic.patch").sizes(), (std::vector<int64_t>{4, 2, 2, 32}));
    EXPECT_EQ(file.at("semantic.times").size(0), 4);
    EXPECT_DOUBLE_EQ(file.at("semantic.times")[1].item<double>(), table.times[sem.indices[1]]);

    // Motion: 25 fps, the centred 9 frames (short videos loop).
    std::vector<int64_t> idx = io::fixed_rate_indices(table.times, table.end_time, 25.0, 9);
    const size_t start = (idx.size() - 9) / 2;
    idx = std::vector<int64_t>(idx.begin() + start, idx.begin() + start + 9);
    const auto clip = io::i3d_transform(src->read(idx), 193, 193).unsqueeze(0);
    const auto mo = models.i3d->forward(clip);
    EXPECT_LT(rel_error(file.at("motion.mixed_5c"), mo.mixed_5c[0]), 1e-5);
    EXPECT_LT(rel_error(file.at("motion.features"), mo.features.mean({2, 3, 4})[0]), 1e-5);
    EXPECT_EQ(file.at("motion.mixed_5c").size(0), 1024);
    EXPECT_EQ(file.at("motion.features").sizes(), (std::vector<int64_t>{1024}));
    EXPECT_EQ(file.at("motion.times").size(0), 9);

    EXPECT_EQ(meta.at("format"), data::kStoreFormat);
    EXPECT_EQ(meta.at("streams"), "semantic,motion");
    EXPECT_EQ(meta.at("semantic.weights"), "tiny-dinov3");
    EXPECT_EQ(meta.at("semantic.weights_hash"), data::weights_fingerprint(*models.dinov3));
    EXPECT_NE(meta.at("motion.sampling").find("centred clip of 9"), std::string::npos);
    EXPECT_EQ(meta.at("storage_dtype"), "fp32");
    if (v.id == "clip_short") {
      ASSERT_TRUE(meta.count("warnings"));
      EXPECT_NE(meta.at("warnings").find("2 frames"), std::string::npos) << meta.at("warnings");
    }
  }

  // The store as a training set: labels from the manifest, the missing video skipped and counted.
  data::StoreDataset ds(store / "s", vids.manifest);
  EXPECT_EQ(ds.size(), 4);
  EXPECT_EQ(ds.missing(), 1);
  EXPECT_EQ(ds.class_names(), vids.manifest.class_names);
  const data::Sample sample = ds.get(1);
  EXPECT_EQ(sample.semantic.sizes(), (std::vector<int64_t>{4, 2, 2, 32}));
  EXPECT_EQ(sample.semantic_cls.sizes(), (std::vector<int64_t>{4, 32}));
  EXPECT_EQ(sample.motion.size(0), 1024);
  EXPECT_EQ(sample.motion.scalar_type(), torch::kFloat32);
  EXPECT_EQ(sample.label, vids.manifest.videos[1].label);
  const data::Batch batch = data::load_batch(ds, {0, 1, 2, 3});  // the trainer's path
  EXPECT_EQ(batch.labels.size(0), 4);

  // A rerun finds everything complete and redoes only the failure (still failing).
  const data::ExtractSummary again = extract(vids.manifest, models, o);
  EXPECT_EQ(again.skipped, 4);
  EXPECT_EQ(again.done, 0);
  EXPECT_EQ(again.failed, 1);
}

TEST(Extract, InterruptedThenResumedEqualsUninterrupted) {
  auto& vids = ExtractVideos::get();
  ScratchDir store;
  data::ExtractModels models;
  models.dinov3 = tiny_dinov3();
  Small o = small_options(store / "full");
  o.recipe.pool = 2;         // 2×2 grid → 1×1
  o.run.semantic_batch = 4;  // one video per batch, so both runs batch identically (bitwise equal)
  const auto full = extract(vids.manifest, models, o);
  EXPECT_EQ(full.done, 4);
  EXPECT_EQ(full.failed, 1);
  const auto one = weights::SafetensorsFile(data::store_file_path(store / "full", "clip_h264"));
  EXPECT_EQ(one.info("semantic.patch").dtype, torch::kHalf);  // fp16 storage by default
  EXPECT_EQ(one.info("semantic.patch").shape, (std::vector<int64_t>{4, 1, 1, 32}));
  EXPECT_EQ(one.info("semantic.times").dtype, torch::kFloat64);
  EXPECT_FALSE(one.contains("motion.mixed_5c"));

  // Stop after two videos (as a kill would), then damage one written file and leave a temp file
  // behind as a killed writer does: the rerun redoes the damaged one, ignores the temp file and
  // completes the rest.
  Small part = o;
  part.run.store_dir = store / "resumed";
  part.run.stop_after = 2;
  const auto first = extract(vids.manifest, models, part);
  EXPECT_TRUE(first.stopped);
  EXPECT_EQ(first.done, 2);
  EXPECT_GT(first.not_attempted, 0);
  auto files = data::scan_store(store / "resumed");
  ASSERT_EQ(files.size(), 2u);
  for (const auto& f : files) EXPECT_TRUE(f.ok) << f.error;
  fs::resize_file(files[0].path, fs::file_size(files[0].path) - 10);  // truncated
  EXPECT_FALSE(data::inspect_store_file(files[0].path).ok);
  write_bytes(files[1].path + ".tmp.12345.0", "half a file");

  part.run.stop_after = -1;
  const auto second = extract(vids.manifest, models, part);
  EXPECT_FALSE(second.stopped);
  EXPECT_EQ(second.skipped, 1);
  EXPECT_EQ(second.done, 3);
  EXPECT_EQ(second.failed, 1);
  fs::remove(files[1].path + ".tmp.12345.0");
  expect_same_store(store / "full", store / "resumed");
}

TEST(Extract, TwoShardsEqualOneUnshardedRun) {
  auto& vids = ExtractVideos::get();
  ScratchDir store;
  data::ExtractModels models;
  models.dinov3 = tiny_dinov3();
  Small o = small_options(store / "one");
  o.run.semantic_batch = 4;
  extract(vids.manifest, models, o);
  int64_t total = 0;
  for (int i = 0; i < 2; ++i) {
    Small s = o;
    s.run.store_dir = store / "sharded";
    s.run.shard_index = i;
    s.run.shard_count = 2;
    const auto sum = extract(vids.manifest, models, s);
    EXPECT_GT(sum.shard_videos, 0) << "shard " << i << " got no video: pick other test ids";
    total += sum.shard_videos;
  }
  EXPECT_EQ(total, 5);
  expect_same_store(store / "one", store / "sharded");
  EXPECT_EQ(failure_ids(store / "sharded"), (std::vector<std::string>{"clip_corrupt"}));
  // The index written by the last shard covers both shards' files.
  std::ifstream index_in(store / "sharded/index.json");
  EXPECT_EQ(nlohmann::json::parse(index_in)["videos"].size(), 4u);
}

TEST(Extract, UnwritableStoreStopsCleanly) {
  auto& vids = ExtractVideos::get();
  ScratchDir store;
  data::ExtractModels models;
  models.dinov3 = tiny_dinov3();
  // The store path is a file: refused before any work.
  write_bytes(store / "a_file", "x");
  EXPECT_THROW_WITH(extract(vids.manifest, models, small_options(store / "a_file")), "a_file",
                    "cannot create the feature store folder");
  // A write that fails mid-run (here: a folder sits where the second file must go; a full disk
  // fails the same way) ends the run with the reason, and what was written stays valid.
  const data::Manifest m = only(vids.manifest, {"clip_h264", "clip_vp9", "clip_mpeg4"});
  fs::create_directories(data::store_file_path(store / "s", "clip_vp9"));
  Small o = small_options(store / "s");
  o.run.semantic_batch = 4;
  const auto s = extract(m, models, o);
  EXPECT_TRUE(s.stopped);
  EXPECT_TRUE(s.write_error);
  EXPECT_NE(s.stop_reason.find("clip_vp9.safetensors"), std::string::npos) << s.stop_reason;
  EXPECT_NE(s.stop_reason.find("rerun"), std::string::npos) << s.stop_reason;
  EXPECT_EQ(s.done, 1);
  EXPECT_TRUE(data::inspect_store_file(data::store_file_path(store / "s", "clip_h264")).ok);
  EXPECT_TRUE(failure_ids(store / "s").empty());  // not the video's fault: no failure recorded
}

TEST(Extract, ShardsAndOptions) {
  EXPECT_EQ(data::parse_shard("1/4"), std::make_pair(1, 4));
  EXPECT_THROW_WITH(data::parse_shard("4/4"), "4/4", "0 <= i < n");
  EXPECT_THROW_WITH(data::parse_shard("a/b"), "a/b", "i/n");
  EXPECT_THROW_WITH(data::parse_shard("1"), "i/n");
  // Every id lands in exactly one shard, the same one on every machine (FNV-1a of the id).
  for (const std::string id : {"1", "74225", "abc_000010_000020"}) {
    int owners = 0;
    for (int i = 0; i < 3; ++i) owners += data::in_shard(id, i, 3);
    EXPECT_EQ(owners, 1) << id;
  }
  EXPECT_EQ(data::fnv1a64("a"), 0xaf63dc4c8601ec8cull);  // the published FNV-1a test vector
  {
    vidfuse::test::EnvScope rank("RANK", "2"), world("WORLD_SIZE", "3");
    EXPECT_EQ(data::shard_from_env(), std::make_pair(2, 3));
  }
  EXPECT_EQ(data::shard_from_env(), std::make_pair(0, 1));
  data::ExtractModels none;
  Small nothing = small_options("/tmp/x");
  nothing.recipe.dinov3.clear();
  EXPECT_THROW_WITH(extract({}, none, nothing), "no model");
  // The recipe and the models must agree on the streams.
  EXPECT_THROW_WITH(extract({}, none, small_options("/tmp/x")), "names a semantic backbone",
                    "no semantic model was given");
}

TEST(Store, InspectCatchesDamageAndForeignFiles) {
  ScratchDir d;
  weights::TensorMap t = {{"semantic.cls", torch::ones({4, 8})},
                          {"semantic.patch", torch::ones({4, 2, 2, 8})},
                          {"semantic.times", torch::zeros({4}, torch::kFloat64)}};
  data::write_store_file(d.path().string(), "v", t, {{"streams", "semantic"}});
  const std::string path = data::store_file_path(d.path().string(), "v");
  auto info = data::inspect_store_file(path, data::required_tensors({"semantic"}));
  EXPECT_TRUE(info.ok) << info.error;
  EXPECT_EQ(info.id, "v");
  EXPECT_EQ(info.shapes.at("semantic.patch"), (std::vector<int64_t>{4, 2, 2, 8}));
  // Requiring a stream the file lacks.
  info = data::inspect_store_file(path, data::required_tensors({"motion"}));
  EXPECT_FALSE(info.ok);
  EXPECT_NE(info.error.find("motion.mixed_5c"), std::string::npos) << info.error;
  // A file claiming a stream it lacks.
  data::write_store_file(d.path().string(), "w", t, {{"streams", "semantic,flow"}});
  info = data::inspect_store_file(data::store_file_path(d.path().string(), "w"));
  EXPECT_FALSE(info.ok);
  EXPECT_NE(info.error.find("flow.mixed_5c"), std::string::npos) << info.error;
  // Extra bytes (or missing ones) break the size check.
  { std::ofstream(path, std::ios::app) << "junk"; }
  info = data::inspect_store_file(path);
  EXPECT_FALSE(info.ok);
  EXPECT_NE(info.error.find("data section"), std::string::npos) << info.error;
  // A safetensors file that is not ours.
  weights::save_safetensors(d / "x.safetensors", t);
  info = data::inspect_store_file(d / "x.safetensors");
  EXPECT_FALSE(info.ok);
  EXPECT_NE(info.error.find("not a vidfuse feature file"), std::string::npos) << info.error;
  // Not safetensors at all.
  write_bytes(d / "y.safetensors", "abc");
  EXPECT_FALSE(data::inspect_store_file(d / "y.safetensors").ok);
  EXPECT_EQ(data::scan_store(d.path().string()).size(), 4u);
}

TEST(Store, FailuresFileAndNpy) {
  ScratchDir d;
  data::append_failure(d.path().string(), {"a", "/x/a.mp4", "boom \"quoted\"\nline", ""});
  { std::ofstream(d / "failures.jsonl", std::ios::app) << "{\"id\": \"torn"; }  // killed writer
  data::append_failure(d.path().string(), {"b", "/x/b.mp4", "bad", ""});
  const auto f = data::read_failures(d.path().string());
  ASSERT_EQ(f.size(), 2u);  // the torn line is skipped, the next record is intact
  EXPECT_EQ(f[0].id, "a");
  EXPECT_EQ(f[0].error, "boom \"quoted\"\nline");
  EXPECT_FALSE(f[0].time.empty());
  EXPECT_EQ(f[1].id, "b");
  EXPECT_THROW_WITH(data::append_failure(d / "no/such/dir", {"a", "", "", ""}), "failures.jsonl");

  data::write_npy(d / "v_rgb.npy", torch::arange(6, torch::kFloat32).view({2, 3}));
  const std::string npy = read_bytes(d / "v_rgb.npy");
  ASSERT_GE(npy.size(), 128u + 24u);
  EXPECT_EQ(npy.substr(0, 6), "\x93NUMPY");
  EXPECT_NE(npy.find("'descr': '<f4', 'fortran_order': False, 'shape': (2,3)"), std::string::npos);
  EXPECT_EQ((npy.size() - 24) % 64, 0u);  // data 64-byte aligned
  float last;
  std::memcpy(&last, npy.data() + npy.size() - 4, 4);
  EXPECT_EQ(last, 5.0f);
}

#ifdef VIDFUSE_CLI
// The real thing: `vidfuse extract` killed with SIGKILL as soon as its first file lands, then
// rerun, gives the same store as an uninterrupted run; `store verify` / `store stats` report it.
TEST(ExtractCli, KilledRunResumesToTheSameStore) {
  auto& vids = ExtractVideos::get();
  ScratchDir d;
  // A tiny DINOv3 as a Hugging Face folder.
  fs::create_directories(d / "dinov3");
  {
    auto model = tiny_dinov3();
    std::ofstream(d / "dinov3/config.json") << model->config().to_json().dump();
    weights::TensorMap state;
    for (const auto& p : model->named_parameters()) state[p.key()] = p.value().detach();
    weights::save_safetensors(d / "dinov3/model.safetensors", state);
  }
  auto command = [&](const std::string& out) {
    return std::vector<std::string>{
        VIDFUSE_CLI, "--threads", "1",          "extract",    "--manifest", vids.list_file,
        "--out",     out,         "--dinov3",   d / "dinov3", "--streams",  "semantic",
        "--size",    "32",        "--frames",   "4",          "--batch",    "4",
        "--workers", "1",         "--prefetch", "1",          "--progress", "lines"};
  };
  auto spawn = [](const std::vector<std::string>& args, const std::string& log) {
    // Everything the child needs is prepared before fork(): after it, only async-signal-safe calls.
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  };
  auto wait_status = [](pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  };
  // Uninterrupted reference run: the corrupt video fails → exit 1.
  int st = wait_status(spawn(command(d / "ref"), d / "ref.log"));
  ASSERT_TRUE(WIFEXITED(st)) << read_bytes(d / "ref.log");
  EXPECT_EQ(WEXITSTATUS(st), 1) << read_bytes(d / "ref.log");

  // Killed run.
  const pid_t pid = spawn(command(d / "killed"), d / "killed.log");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool landed = false;
  while (!landed && std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (fs::directory_iterator it(d / "killed", ec); !ec && it != fs::directory_iterator();
         it.increment(ec))
      if (it->path().extension() == ".safetensors") landed = true;
    if (!landed) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  ::kill(pid, SIGKILL);
  st = wait_status(pid);
  ASSERT_TRUE(landed) << read_bytes(d / "killed.log");
  for (const auto& f : data::scan_store(d / "killed")) EXPECT_TRUE(f.ok) << f.error;
  const size_t before = data::scan_store(d / "killed").size();
  EXPECT_GE(before, 1u);
  EXPECT_LT(before, 4u) << "the run finished before the kill: nothing was interrupted";
  st = wait_status(spawn(command(d / "killed"), d / "resume.log"));
  EXPECT_EQ(WEXITSTATUS(st), 1) << read_bytes(d / "resume.log");
  expect_same_store(d / "ref", d / "killed");

  // store verify: incomplete against the full list (the corrupt video), complete without it.
  const std::string cli = VIDFUSE_CLI;
  EXPECT_NE(std::system((cli + " store verify " + d / "killed" + " --manifest " + vids.list_file +
                         " > " + d / "verify.log 2>&1")
                            .c_str()),
            0);
  EXPECT_NE(read_bytes(d / "verify.log").find("1 with a recorded failure"), std::string::npos)
      << read_bytes(d / "verify.log");
  {
    std::ofstream good(d / "good.txt");
    for (const auto& v : vids.manifest.videos)
      if (v.id != "clip_corrupt") good << v.path << "\n";
  }
  EXPECT_EQ(std::system((cli + " store verify " + d / "killed" + " --manifest " + d / "good.txt" +
                         " --streams semantic > " + d / "verify2.log 2>&1")
                            .c_str()),
            0)
      << read_bytes(d / "verify2.log");
  EXPECT_EQ(std::system((cli + " store stats " + d / "killed" + " --json --project 220847 > " +
                         d / "stats.json")
                            .c_str()),
            0);
  const auto stats = nlohmann::json::parse(read_bytes(d / "stats.json"));
  EXPECT_EQ(stats["files"], 4);
  EXPECT_EQ(stats["failed"], 1);
  EXPECT_GT(stats["projected_bytes"].get<double>(), 0);
}
#endif

TEST(ExtractRecipe, JsonRoundTripDefaultsAndErrors) {
  data::ExtractRecipe r;
  r.dinov3 = "builtin";
  r.pool = 2;
  r.semantic_layers = {3, 5};
  r.motion_sampling.fps = 12;
  r.flow.method = io::FlowMethod::kDIS;
  r.storage_dtype = torch::kBFloat16;
  const nlohmann::json j = data::to_json(r);
  EXPECT_EQ(j.at("format"), "vidfuse-extract-settings");
  EXPECT_EQ(j.at("storage_dtype"), "BF16");  // the safetensors name, as stores have always had
  EXPECT_EQ(j.at("semantic_sampling").at("kind"), "segment");
  const data::ExtractRecipe back = data::extract_recipe_from_json(j, "x.json");
  EXPECT_EQ(data::to_json(back), j);
  // A file of an older version (no flow_method) takes the defaults; keys of a newer one are
  // ignored; wrong types and values out of range name the file and the key.
  nlohmann::json old = j;
  old.erase("flow_method");
  old["added_later"] = 1;
  EXPECT_EQ(data::extract_recipe_from_json(old, "x.json").flow.method, io::FlowMethod::kTVL1);
  nlohmann::json bad = j;
  bad["pool"] = "2";
  EXPECT_THROW_WITH(data::extract_recipe_from_json(bad, "x.json"), "x.json", "\"pool\"", "integer");
  bad["pool"] = 0;
  EXPECT_THROW_WITH(data::extract_recipe_from_json(bad, "x.json"), "x.json", "pool must be >= 1");
  bad = j;
  bad["storage_dtype"] = "F64";
  EXPECT_THROW_WITH(data::extract_recipe_from_json(bad, "x.json"), "storage_dtype", "\"F16\"");
}
