// Workflow*: the user's path through the commands, end to end on a tiny generated dataset with the
// built-in backbones: synth -> extract (both streams) -> train (config file + overriding flags,
// and --nproc 2) -> eval -> predict, then a small `vidfuse demo`. Each step checks what the next
// one relies on (files, saved config, class names, exit codes and error messages).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "test_util.h"
#include "vidfuse/weights/safetensors.h"

#ifdef VIDFUSE_CLI

using namespace vidfuse;
using namespace vidfuse::test;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Runs the CLI with `args`; returns the exit status, stdout+stderr in `output`.
int run(const std::string& args, std::string* output = nullptr, const std::string& log = "") {
  const std::string out = log.empty() ? "/dev/null" : log;
  const int rc = std::system(
      (std::string(VIDFUSE_CLI) + " --threads 1 " + args + " > " + out + " 2>&1").c_str());
  if (output && !log.empty()) *output = read_bytes(log);
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

// One dataset and store shared by the tests of this file (built once: it is the slow part).
class Workflow : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir();
    const std::string d = dir_->path().string();
    std::string log;
    ASSERT_EQ(run("synth --out " + d + "/data --clips 16 --actions 2 --objects 2 --frames 16", &log,
                  d + "/synth.log"),
              0)
        << log;
    for (const char* split : {"train", "validation"}) {
      ASSERT_EQ(run(std::string("extract --manifest ") + d + "/data/composite/" + split +
                        ".json --videos " + d + "/data/videos --out " + d +
                        "/store --dinov3 builtin --i3d builtin --frames 2 --size 64 --pool 2 "
                        "--motion-fps 12 --motion-clip 9 --motion-short-side 193 "
                        "--motion-crop 193 --dtype fp32 --progress off",
                    &log, d + "/extract.log"),
                0)
          << log;
    }
    json cfg = {{"model", {{"width", 32}, {"heads", 2}, {"depth", 1}, {"pool_queries", 1}}},
                {"data",
                 {{"store", d + "/store"},
                  {"train", d + "/data/composite/train.json"},
                  {"val", d + "/data/composite/validation.json"}}},
                {"epochs", 5},
                {"batch_size", 4},
                {"log_every", 2}};
    std::ofstream(d + "/config.json") << cfg.dump(2);
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string path(const std::string& rel) { return (dir_->path() / rel).string(); }
  static ScratchDir* dir_;
};
ScratchDir* Workflow::dir_ = nullptr;

TEST_F(Workflow, TrainEvalPredict) {
  std::string log;
  // Flags override the file: 2 epochs, not 5; the config used is the one saved.
  ASSERT_EQ(
      run("train --config " + path("config.json") + " --epochs 2 --seed 3 --output " + path("run"),
          &log, path("train.log")),
      0)
      << log;
  EXPECT_NE(log.find("val top1"), std::string::npos) << log;
  for (const char* f : {"checkpoint-last.safetensors", "checkpoint-best.safetensors", "log.jsonl",
                        "metrics.json", "report.html"})
    EXPECT_TRUE(fs::exists(path("run/") + f)) << f;
  weights::SafetensorsFile ckpt(path("run/checkpoint-last.safetensors"));
  const json saved = json::parse(ckpt.metadata().at("config"));
  EXPECT_EQ(saved["epochs"], 2);
  EXPECT_EQ(saved["seed"], 3);
  EXPECT_EQ(saved["data"]["store"], path("store"));
  EXPECT_EQ(saved["model"]["num_classes"], 4);  // from the manifest: 2 actions x 2 objects
  const auto names = json::parse(ckpt.metadata().at("class_names"));
  ASSERT_EQ(names.size(), 4u);

  // eval: the saved validation set by default; its JSON has the per-class numbers.
  ASSERT_EQ(run("eval --checkpoint " + path("run/checkpoint-best.safetensors") + " --output " +
                    path("metrics.json"),
                &log, path("eval.log")),
            0)
      << log;
  const json m = json::parse(read_bytes(path("metrics.json")));
  const int64_t val_count = json::parse(read_bytes(path("data/composite/validation.json"))).size();
  EXPECT_EQ(m["count"], val_count);
  EXPECT_GE(m["top1"].get<double>(), 0.0);
  EXPECT_LE(m["top1"].get<double>(), 1.0);

  // predict: one real video, one missing file; the good one is still answered, the exit is 1.
  const auto val = json::parse(read_bytes(path("data/composite/validation.json")));
  std::string video;
  for (const auto& ext : {".webm", ".mp4"})
    if (fs::exists(path("data/videos/" + val[0]["id"].get<std::string>() + ext)))
      video = path("data/videos/" + val[0]["id"].get<std::string>() + ext);
  ASSERT_FALSE(video.empty());
  EXPECT_EQ(run("predict --json --top-k 3 --checkpoint " + path("run/checkpoint-best.safetensors") +
                    " " + video + " " + path("missing.mp4"),
                &log, path("predict.log")),
            1)
      << log;
  std::istringstream lines(read_bytes(path("predict.log")));
  std::string line;
  int answered = 0, failed = 0;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] != '{') continue;
    const json p = json::parse(line);
    if (p.contains("top")) {
      ++answered;
      ASSERT_EQ(p["top"].size(), 3u);
      double total = 0;
      for (const auto& c : p["top"]) {
        total += c["score"].get<double>();
        EXPECT_NE(std::find(names.begin(), names.end(), c["name"]), names.end()) << c;
      }
      EXPECT_LE(total, 1.0 + 1e-6);
    } else {
      ++failed;
      EXPECT_NE(p["error"].get<std::string>().find("missing.mp4"), std::string::npos) << line;
    }
  }
  EXPECT_EQ(answered, 1);
  EXPECT_EQ(failed, 1);
}

TEST_F(Workflow, TwoLocalRanksTrain) {
  std::string log;
  ASSERT_EQ(
      run("train --config " + path("config.json") + " --epochs 1 --nproc 2 --output " + path("ddp"),
          &log, path("ddp.log")),
      0)
      << log;
  EXPECT_NE(log.find("starting 2 ranks"), std::string::npos) << log;
  EXPECT_TRUE(fs::exists(path("ddp/checkpoint-last.safetensors"))) << log;
}

TEST_F(Workflow, TwoLocalProcessesExtractOneStore) {
  // `extract --nproc 2`: two processes, each its shard (RANK of WORLD_SIZE), one store whose files
  // equal the single-process run's, indexed once both are done.
  std::string log;
  ASSERT_EQ(run("extract --nproc 2 --manifest " + path("data/composite/train.json") + " --videos " +
                    path("data/videos") + " --out " + path("store2") +
                    " --dinov3 builtin --i3d builtin --frames 2 --size 64 --pool 2 "
                    "--motion-fps 12 --motion-clip 9 --motion-short-side 193 "
                    "--motion-crop 193 --dtype fp32 --progress lines",
                &log, path("extract2.log")),
            0)
      << log;
  EXPECT_NE(log.find("starting 2 processes"), std::string::npos) << log;
  EXPECT_NE(log.find("in shard 0/2"), std::string::npos) << log;
  EXPECT_NE(log.find("in shard 1/2"), std::string::npos) << log;
  const json index = json::parse(read_bytes(path("store2/index.json")));
  const json train = json::parse(read_bytes(path("data/composite/train.json")));
  ASSERT_EQ(index["videos"].size(), train.size());
  for (const auto& [id, entry] : index["videos"].items()) {
    const auto a = weights::load_safetensors(path("store2/" + id + ".safetensors"));
    const auto b = weights::load_safetensors(path("store/" + id + ".safetensors"));
    ASSERT_EQ(a.size(), b.size()) << id;
    for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << id << " " << name;
  }
}

TEST_F(Workflow, BadConfigsAreNamed) {
  std::string log;
  json bad = json::parse(read_bytes(path("config.json")));
  bad["learning_rate"] = 0.1;  // not a key
  std::ofstream(path("bad.json")) << bad.dump();
  EXPECT_EQ(
      run("train --config " + path("bad.json") + " --output " + path("bad"), &log, path("bad.log")),
      2);
  EXPECT_NE(log.find("bad.json"), std::string::npos) << log;
  EXPECT_NE(log.find("learning_rate"), std::string::npos) << log;

  EXPECT_EQ(
      run("train --config " + path("config.json") + " --streams sideways", &log, path("bad2.log")),
      2);
  EXPECT_NE(log.find("streams"), std::string::npos) << log;

  // A store folder that does not exist is named.
  EXPECT_EQ(run("train --config " + path("config.json") + " --store " + path("nowhere"), &log,
                path("bad3.log")),
            2);
  EXPECT_NE(log.find("nowhere"), std::string::npos) << log;

  EXPECT_EQ(run("eval --checkpoint " + path("config.json"), &log, path("bad4.log")), 2);
  EXPECT_NE(log.find("config.json"), std::string::npos) << log;
}

TEST(WorkflowDemo, SmallDemoRunsEndToEnd) {
  ScratchDir d;
  std::string log;
  ASSERT_EQ(
      run("demo --out " + d / "demo" + " --clips 18 --epochs 1 --seeds 2", &log, d / "demo.log"), 0)
      << log;
  EXPECT_NE(log.find("report:"), std::string::npos) << log;
  // Progress through every run: each of the 8 (4 models x 2 seeds, separate processes) says when
  // it is done, and leaves its log.
  EXPECT_NE(log.find("done (8/8)"), std::string::npos) << log;
  for (const char* arch : {"fusion", "semantic", "motion", "late"})
    for (const char* seed : {"0", "1"}) {
      EXPECT_TRUE(std::regex_search(
          log, std::regex(std::string(arch) + " +seed " + seed + " done \\([1-8]/8\\)")))
          << arch << " " << seed << "\n"
          << log;
      EXPECT_TRUE(fs::exists(d / ("demo/" + std::string(arch) + "/seed-" + seed + "/train.log")));
    }
  const std::string report = read_bytes(d / "demo/report.html");
  EXPECT_NE(report.find("random weights"), std::string::npos);
  for (const char* arch : {"fusion", "semantic", "motion", "late"})
    for (const char* seed : {"seed-0", "seed-1"}) {
      const std::string link = std::string(arch) + "/" + seed + "/report.html";
      EXPECT_NE(report.find("href=\"" + link + "\""), std::string::npos) << link;
      EXPECT_TRUE(fs::exists(d / ("demo/" + link))) << link;
    }
  // No raw floats in the summary: durations in seconds, fractions as percentages.
  EXPECT_FALSE(std::regex_search(report, std::regex("[0-9]\\.[0-9]{4}"))) << report;
}

}  // namespace

#endif  // VIDFUSE_CLI
