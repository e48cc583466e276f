// StorePaths / AtomicFile / ExtractPaths: the store against hostile ids and a hostile folder.
// Every file name made from a manifest id stays inside the store (or the video is a recorded
// failure, and the run goes on); links planted in the store are never written through; temp files
// of killed runs are found and removed; Kinetics times that would wrap the file name are refused.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>

#include "test_models_util.h"
#include "test_util.h"
#include "test_video_util.h"
#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/models/i3d.h"

using namespace vidfuse;
using namespace vidfuse::test;
namespace fs = std::filesystem;

namespace {

// A process id that no process has any more: a child that exited and was reaped.
pid_t dead_pid() {
  const pid_t pid = ::fork();
  if (pid == 0) ::_exit(0);
  ::waitpid(pid, nullptr, 0);
  return pid;
}

std::vector<std::string> names_in(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Every file under `root` whose name contains `part`, wherever it is.
std::vector<std::string> files_named(const std::string& root, const std::string& part) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root))
    if (e.path().filename().string().find(part) != std::string::npos)
      out.push_back(e.path().string());
  return out;
}

std::map<std::string, std::string> failures_by_id(const std::string& store) {
  std::map<std::string, std::string> out;
  for (const auto& f : data::read_failures(store)) out[f.id] = f.error;
  return out;
}

}  // namespace

TEST(StorePaths, OrdinaryIdsKeepTheirNamesHostileOnesAreRefused) {
  // SSv2 numeric ids, Kinetics <ytid>_<start>_<end>, list ids with folders flattened: unchanged.
  EXPECT_EQ(data::store_file_path("/s", "74225"), "/s/74225.safetensors");
  EXPECT_EQ(data::store_file_path("/s", "-abc_DEF1_000010_000020"),
            "/s/-abc_DEF1_000010_000020.safetensors");
  EXPECT_EQ(data::store_file_path("/s", "class__video", "_rgb.npy"), "/s/class__video_rgb.npy");
  EXPECT_EQ(data::store_file_path("/s", "..a.b c"), "/s/..a.b c.safetensors");
  EXPECT_EQ(data::store_id_problem("74225"), "");

  const std::string nul("a\0b", 3);
  const std::string long_id(300, 'x');
  for (const char* suffix : {".safetensors", "_rgb.npy", "_flow.npy"}) {
    SCOPED_TRACE(suffix);
    EXPECT_THROW_WITH(data::store_file_path("/s", "../escape", suffix), "video id '../escape'",
                      "'/'");
    EXPECT_THROW_WITH(data::store_file_path("/s", "a/b", suffix), "'a/b'", "'/'");
    EXPECT_THROW_WITH(data::store_file_path("/s", "..", suffix), "'..'");
    EXPECT_THROW_WITH(data::store_file_path("/s", ".", suffix), "'.'");
    EXPECT_THROW_WITH(data::store_file_path("/s", "", suffix), "is empty");
    EXPECT_THROW_WITH(data::store_file_path("/s", nul, suffix), "'a\\x00b'", "NUL at byte 1");
    EXPECT_THROW_WITH(data::store_file_path("/s", "a\nb", suffix), "'a\\x0ab'", "control byte");
    // A hostile length is named and cut, not echoed whole.
    try {
      data::store_file_path("/s", long_id, suffix);
      ADD_FAILURE() << "a 300-byte id was accepted";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find("300 bytes"), std::string::npos) << what;
      EXPECT_LT(what.size(), 250u) << what;
    }
  }
}

TEST(AtomicFile, TempFilesAreFreshExclusiveAndUnguessable) {
  ScratchDir d;
  const std::string target = d / "f.json";
  const std::string a = temp_path_for(target), b = temp_path_for(target);
  EXPECT_NE(a, b);
  long pid = 0;
  ASSERT_TRUE(parse_temp_name(fs::path(a).filename().string(), &pid)) << a;
  EXPECT_EQ(pid, ::getpid());
  EXPECT_TRUE(fs::is_regular_file(a));  // reserved: created empty, exclusively
  EXPECT_EQ(fs::file_size(a), 0u);
  // "<name>.tmp.<pid>.<16 hex>": nothing a planted link could have predicted.
  const std::string tag = a.substr(a.rfind('.') + 1);
  EXPECT_EQ(tag.size(), 16u) << a;
  fs::remove(a);
  fs::remove(b);

  // Links planted under the old predictable names (<name>.tmp.<pid>.<0..n>) and at the target:
  // the write neither follows them nor touches their target; the target's link is replaced.
  write_bytes(d / "victim", "precious");
  for (int n = 0; n < 512; ++n)
    fs::create_symlink(d / "victim",
                       target + ".tmp." + std::to_string(::getpid()) + "." + std::to_string(n));
  fs::create_symlink(d / "victim", target);
  write_text_atomically(target, "{}\n");
  EXPECT_EQ(read_bytes(d / "victim"), "precious");
  EXPECT_FALSE(fs::is_symlink(target));
  EXPECT_EQ(read_bytes(target), "{}\n");

  // A failing writer leaves neither the target nor a temp file behind.
  const size_t before = names_in(d.path().string()).size();
  EXPECT_THROW_WITH(
      write_file_atomically(d / "g.json", [](std::ostream&) { throw Error("writer gave up"); }),
      "writer gave up");
  EXPECT_FALSE(fs::exists(d / "g.json"));
  EXPECT_EQ(names_in(d.path().string()).size(), before);
}

TEST(AtomicFile, FailuresFileThatIsALinkIsRefused) {
  ScratchDir d;
  fs::create_directories(d / "store");
  write_bytes(d / "other.txt", "keep me\n");
  fs::create_symlink(d / "other.txt", d / "store/failures.jsonl");
  EXPECT_THROW_WITH(data::append_failure(d / "store", {"a", "/x/a.mp4", "bad", ""}),
                    "failures.jsonl", "symbolic link");
  EXPECT_EQ(read_bytes(d / "other.txt"), "keep me\n");
  // Nor a folder or anything else that is not a plain file.
  fs::remove(d / "store/failures.jsonl");
  ASSERT_EQ(::mkfifo((d / "store/failures.jsonl").c_str(), 0644), 0);
  EXPECT_THROW_WITH(data::append_failure(d / "store", {"a", "/x/a.mp4", "bad", ""}),
                    "failures.jsonl", "not a regular file");
}

TEST(AtomicFile, StaleTempsOfDeadProcessesAreFoundAndOnlyThose) {
  ScratchDir d;
  const std::string dir = d.path().string();
  const pid_t dead = dead_pid();
  const std::string mine = temp_path_for(d / "live.safetensors");  // this (live) process's
  const std::string host = mine.substr(mine.rfind('.') + 1, 8);
  const std::string other_host = host == "00000000" ? "11111111" : "00000000";
  const std::string dpid = std::to_string(dead);
  write_bytes(d / ("a.safetensors.tmp." + dpid + ".3"), "x");  // the old form
  write_bytes(d / ("index.json.tmp." + dpid + "." + host + "0123abcd"), "x");
  write_bytes(d / ("far.safetensors.tmp." + dpid + "." + other_host + "0123abcd"), "x");
  write_bytes(d / ("old.safetensors.tmp." + dpid + "." + other_host + "99999999"), "x");
  fs::last_write_time(d / ("old.safetensors.tmp." + dpid + "." + other_host + "99999999"),
                      fs::file_time_type::clock::now() - std::chrono::hours(48));
  write_bytes(d / ("weird.tmp." + dpid + ".zz"), "x");         // not the temp form
  write_bytes(d / ("v.tmp." + dpid + ".7.safetensors"), "x");  // a store file, not a temp
  write_bytes(d / "plain.safetensors", "x");
  fs::create_symlink(d / "plain.safetensors", d / ("link.tmp." + dpid + ".1"));  // not a file

  const std::vector<std::string> expect = {
      d / ("a.safetensors.tmp." + dpid + ".3"),
      d / ("index.json.tmp." + dpid + "." + host + "0123abcd"),
      d / ("old.safetensors.tmp." + dpid + "." + other_host + "99999999")};
  EXPECT_EQ(find_stale_temps(dir), expect);
  EXPECT_EQ(remove_stale_temps(dir), expect);
  EXPECT_TRUE(find_stale_temps(dir).empty());
  EXPECT_TRUE(fs::exists(mine));  // a live writer's temp stays
  EXPECT_TRUE(fs::exists(d / ("far.safetensors.tmp." + dpid + "." + other_host + "0123abcd")));
  EXPECT_TRUE(fs::is_symlink(d / ("link.tmp." + dpid + ".1")));
  EXPECT_TRUE(find_stale_temps(d / "no-such-folder").empty());
}

// What `store verify` lists: every temp file of atomic_file's form, a live writer's too, in
// sub-folders too; a video whose id holds ".tmp." is a store file, not a temp.
TEST(AtomicFile, VerifyListsTempFilesByTheirFormNotByASubstring) {
  ScratchDir d;
  fs::create_directories(d / "sub");
  write_bytes(d / "a.safetensors.tmp.5.3", "x");
  write_bytes(d / "sub/b.safetensors.tmp.6.0123abcd0123abcd", "x");
  write_bytes(d / "clip.tmp.7.safetensors", "x");
  write_bytes(d / "clip.tmp.v2.safetensors", "x");
  const std::vector<std::string> expect = {d / "a.safetensors.tmp.5.3",
                                           d / "sub/b.safetensors.tmp.6.0123abcd0123abcd"};
  EXPECT_EQ(data::find_temp_files(d.path().string()), expect);
}

TEST(StorePaths, KineticsTimesThatCannotNameAFileAreRefused) {
  ScratchDir d;
  for (const std::string bad : {"inf", "nan", "1e300", "-inf", "-1", "1e400"}) {
    SCOPED_TRACE(bad);
    write_bytes(d / "k.csv",
                "label,youtube_id,time_start,time_end,split\n"
                "a,abc,1,2,train\n"
                "b,def," +
                    bad + ",10,train\n");
    EXPECT_THROW_WITH(data::read_manifest(d / "k.csv"), "k.csv", "line 3", "time_start",
                      "not a time in seconds");
    write_bytes(d / "k.csv",
                "label,youtube_id,time_start,time_end,split\n"
                "b,def,0," +
                    bad + ",train\n");
    EXPECT_THROW_WITH(data::read_manifest(d / "k.csv"), "k.csv", "line 2", "time_end");
  }
  write_bytes(d / "k.csv", "label,youtube_id,time_start,time_end,split\nb,def,0.5,10,train\n");
  EXPECT_EQ(data::read_manifest(d / "k.csv").videos.at(0).id, "def_000000_000010");
}

// End to end: SSv2 JSON, Kinetics CSV and list manifests with hostile entries, the safetensors and
// the --format npy outputs. Every hostile entry is a recorded failure, nothing lands outside the
// store, the good video is extracted, a link loop planted at its store file is replaced, and the
// temp files of a killed run are cleaned up.
TEST(ExtractPaths, HostileEntriesAreRecordedFailuresAndTheRunGoesOn) {
  ScratchDir d;
  const std::string videos = d / "videos", store = d / "deep/store";
  fs::create_directories(videos);
  fs::create_directories(store);
  io::VideoWriterOptions h264;
  h264.codec = "h264";
  h264.fps = 12;
  io::write_video(videos + "/good.mp4", code_frames(12, 48, 64), h264);
  fs::create_symlink("loop.mp4", videos + "/loop.mp4");  // a link loop
  const std::string long_name(300, 'n');

  data::ExtractModels models;
  models.dinov3 = tiny_dinov3();
  data::ExtractRecipe recipe;
  recipe.dinov3 = "tiny-dinov3";
  recipe.semantic_size = 32;
  recipe.semantic_sampling.num_segments = 4;
  data::ExtractRun run;
  run.store_dir = store;
  run.semantic_batch = 8;
  run.progress = data::ProgressMode::Off;
  run.workers = 1;

  // A killed run's leftovers, and a link loop where good's file goes.
  const std::string dpid = std::to_string(dead_pid());
  write_bytes(store + "/good.safetensors.tmp." + dpid + ".0", "half a file");
  write_bytes(store + "/index.json.tmp." + dpid + ".1", "{");
  fs::create_symlink("good.safetensors", store + "/good.safetensors");

  // SSv2 JSON.
  write_bytes(videos + "/train.json",
              "[{\"id\": \"../escape\"}, {\"id\": \"a\\u0000b\"}, {\"id\": \"nodir/x\"}, "
              "{\"id\": \"" +
                  long_name + "\"}, {\"id\": \"good\"}]");
  data::ExtractSummary s =
      data::extract_features(data::read_manifest(videos + "/train.json"), models, recipe, run);
  EXPECT_EQ(s.done, 1);
  EXPECT_EQ(s.failed, 4);
  EXPECT_FALSE(s.stopped) << s.stop_reason;
  EXPECT_EQ(s.not_attempted, 0);
  auto failures = failures_by_id(store);
  EXPECT_NE(failures["../escape"].find("'/'"), std::string::npos) << failures["../escape"];
  EXPECT_NE(failures[std::string("a\0b", 3)].find("NUL"), std::string::npos);
  EXPECT_NE(failures["nodir/x"].find("'/'"), std::string::npos);
  EXPECT_NE(failures[long_name].find("300 bytes"), std::string::npos);
  EXPECT_FALSE(fs::is_symlink(store + "/good.safetensors"));
  EXPECT_TRUE(data::inspect_store_file(store + "/good.safetensors").ok);
  EXPECT_EQ(names_in(store),
            (std::vector<std::string>{"failures.jsonl", "good.safetensors", "index.json"}));

  // Kinetics CSV.
  write_bytes(videos + "/k.csv",
              "label,youtube_id,time_start,time_end,split\n"
              "a,../kin,1,2,train\n"
              "a,../../kin2,1,2,train\n"
              "b," +
                  long_name + ",1,2,train\n");
  s = data::extract_features(data::read_manifest(videos + "/k.csv"), models, recipe, run);
  EXPECT_EQ(s.failed, 3);
  EXPECT_FALSE(s.stopped) << s.stop_reason;
  EXPECT_EQ(failures_by_id(store).count("../kin_000001_000002"), 1u);

  // A list: a link loop and a name too long for the file system.
  write_bytes(videos + "/list.txt", "good.mp4\nloop.mp4\n" + long_name + ".mp4\n");
  s = data::extract_features(data::read_manifest(videos + "/list.txt"), models, recipe, run);
  EXPECT_EQ(s.skipped, 1);
  EXPECT_EQ(s.failed, 2);
  EXPECT_FALSE(s.stopped) << s.stop_reason;
  failures = failures_by_id(store);
  EXPECT_NE(failures["loop"].find("loop.mp4"), std::string::npos) << failures["loop"];
  EXPECT_NE(failures[long_name].find("300 bytes"), std::string::npos);

  // --format npy with the motion stream: the _rgb.npy names go through the same check.
  models::I3DConfig narrow;
  narrow.width = 0.125;  // nothing runs it: every entry is refused before any decoding
  models.i3d = models::InceptionI3d(narrow);
  recipe.i3d = "i3d";
  recipe.motion_clip = 9;
  recipe.motion_short_side = 193;
  recipe.motion_crop = 193;
  run.write_npy = true;
  data::Manifest hostile = data::read_manifest(videos + "/train.json");
  hostile.videos.pop_back();  // all but good
  s = data::extract_features(hostile, models, recipe, run);
  EXPECT_EQ(s.failed, 4);
  EXPECT_EQ(s.done, 0);

  // Nothing anywhere outside the store; no temp file left inside it.
  EXPECT_EQ(names_in(d / "deep"), std::vector<std::string>{"store"});
  EXPECT_TRUE(files_named(d.path().string(), "escape").empty());
  EXPECT_TRUE(files_named(d.path().string(), "kin").empty());
  EXPECT_TRUE(files_named(d.path().string(), ".npy").empty());
  EXPECT_TRUE(files_named(store, ".tmp.").empty());
}
