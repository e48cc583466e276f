// VideoCli*: `vidfuse probe` and `vidfuse frames` as a user runs them.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "test_video_util.h"
#include "vidfuse/io/image.h"

using namespace vidfuse;
using namespace vidfuse::test;

namespace {

struct RunResult {
  int status = -1;
  std::string out;
};

// Runs the vidfuse command with `args`; stdout captured, stderr left to the test log.
RunResult run_cli(const std::string& args) {
  RunResult r;
  FILE* p = ::popen((std::string(VIDFUSE_CLI) + " " + args).c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof(buf), p)) > 0) r.out.append(buf, n);
  const int status = ::pclose(p);
  r.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::vector<nlohmann::json> json_lines(const std::string& text) {
  std::vector<nlohmann::json> v;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) v.push_back(nlohmann::json::parse(line));
  return v;
}

}  // namespace

TEST(VideoCli, ProbeReportsEachFileAndCarriesOnPastBadOnes) {
  auto& vids = TestVideos::get();
  ScratchDir dir;
  const RunResult r = run_cli("probe --json '" + vids["h264"].path + "' '" + dir / "missing.mp4" +
                              "' '" + vids["vp9"].path + "' '" + vids["rot90"].path + "'");
  EXPECT_EQ(r.status, 1);  // one file failed
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 4u) << r.out;
  EXPECT_EQ(lines[0]["codec"], "h264");
  EXPECT_EQ(lines[0]["frame_count"], 40);
  EXPECT_EQ(lines[0]["frame_count_source"], "header");
  EXPECT_EQ(lines[0]["width"], 64);
  EXPECT_NEAR(lines[0]["fps"].get<double>(), 30.0, 1e-6);
  EXPECT_NE(lines[1]["error"].get<std::string>().find(dir / "missing.mp4"), std::string::npos);
  // WebM has no frame count in its header: counted by decoding.
  EXPECT_EQ(lines[2]["codec"], "vp9");
  EXPECT_EQ(lines[2]["frame_count"], 30);
  EXPECT_EQ(lines[2]["frame_count_source"], "decoded");
  EXPECT_EQ(lines[3]["rotation"], 90) << r.out;
  EXPECT_EQ(lines[3]["width"], 48) << r.out;
}

TEST(VideoCli, FramesWritesExactlyTheSampledFrames) {
  const TestVideo& v = TestVideos::get()["h264"];  // 40 frames
  ScratchDir dir;
  const RunResult r =
      run_cli("frames '" + v.path + "' --sampler segment --segments 4 --out '" + dir / "out" + "'");
  ASSERT_EQ(r.status, 0) << r.out;
  std::vector<std::string> pngs;
  for (const auto& e : std::filesystem::directory_iterator(dir / "out"))
    if (e.path().extension() == ".png") pngs.push_back(e.path().string());
  std::sort(pngs.begin(), pngs.end());
  ASSERT_EQ(pngs.size(), 4u);
  std::vector<int64_t> got;
  for (const auto& p : pngs) got.push_back(decode_index(io::read_image_rgb(p)));
  EXPECT_EQ(got, (std::vector<int64_t>{5, 15, 25, 35}));  // centres of 4 segments of 10
  const auto meta = nlohmann::json::parse(read_bytes(dir / "out/frames.json"));
  EXPECT_EQ(meta["frames"][2]["source_index"], 25);

  // With the I3D transform: short side 256, centre crop 224.
  const RunResult i3d = run_cli(
      "frames '" + v.path + "' --sampler fps --fps 10 --transform i3d --out '" + dir / "i3d" + "'");
  ASSERT_EQ(i3d.status, 0) << i3d.out;
  const torch::Tensor img = io::read_image_rgb(dir / "i3d/frame_00000_g000_src000000.png");
  EXPECT_EQ(img.sizes(), (std::vector<int64_t>{224, 224, 3}));
  EXPECT_NE(run_cli("frames '" + v.path + "' --sampler nope --out '" + dir / "x" + "' 2>/dev/null")
                .status,
            0);
}
