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

// FFmpeg's own pictures, in the order its decoder puts them out (`-fps_mode passthrough`: no frame
// dropped or duplicated), as the index each one spells.
std::vector<int64_t> ffmpeg_decode_order(const TestVideo& v) {
  const std::string cmd = "ffmpeg -v error -i '" + v.path +
                          "' -fps_mode passthrough -pix_fmt rgb24 -f rawvideo - 2>/dev/null";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string bytes;
  char buf[1 << 16];
  size_t n;
  while (p && (n = std::fread(buf, 1, sizeof(buf), p)) > 0) bytes.append(buf, n);
  if (p) ::pclose(p);
  const int64_t frame_bytes = v.width * v.height * 3;
  std::vector<int64_t> order;
  for (size_t at = 0; at + frame_bytes <= bytes.size(); at += frame_bytes)
    order.push_back(decode_index(
        torch::from_blob(bytes.data() + at, {v.height, v.width, 3}, torch::kUInt8).clone()));
  return order;
}

}  // namespace

// Frame i is FFmpeg's picture i for every container and codec, including the ones whose packets
// carry no presentation timestamps (AVI) and decoders that reorder (B-frames).
TEST(VideoCli, FramesAreFfmpegsPicturesInItsOutputOrder) {
  for (const char* name :
       {"mpeg4_bframes", "mpeg4", "h264", "h264_bframes_mkv", "vp9", "vfr", "mjpeg"}) {
    SCOPED_TRACE(name);
    const TestVideo& v = TestVideos::get()[name];
    const std::vector<int64_t> reference = ffmpeg_decode_order(v);
    ASSERT_EQ(static_cast<int64_t>(reference.size()), v.frames) << "ffmpeg decoded another count";
    ASSERT_EQ(reference, iota(v.frames));  // the written frames, in order
    // Every seek mode where seeking matters (B-frames, seekable index); the default elsewhere.
    const std::string n = name;
    const bool reorders = n == "mpeg4_bframes" || n == "h264" || n == "h264_bframes_mkv";
    for (const char* seek : {"auto", "never", "always"}) {
      if (!reorders && std::string(seek) != "auto") continue;
      ScratchDir dir;
      const RunResult r = run_cli("frames '" + v.path + "' --sampler all --seek " + seek +
                                  " --out '" + dir / "out" + "' >/dev/null");
      ASSERT_EQ(r.status, 0) << seek;
      std::vector<std::string> pngs;
      for (const auto& e : std::filesystem::directory_iterator(dir / "out"))
        if (e.path().extension() == ".png") pngs.push_back(e.path().string());
      std::sort(pngs.begin(), pngs.end());
      std::vector<int64_t> got;
      for (const auto& png : pngs) got.push_back(decode_index(io::read_image_rgb(png)));
      EXPECT_EQ(got, reference) << "seek " << seek;
    }
  }
}

// A header that promises more frames than the file holds (as a Cinepak AVI seen in the wild does:
// 444 said, 68 there): probe says so and reports what the index found.
TEST(VideoCli, ProbeWarnsWhenTheHeaderFrameCountIsWrong) {
  const TestVideo& v = TestVideos::get()["mpeg4"];  // 30 frames
  ScratchDir dir;
  std::string bytes = read_bytes(v.path);
  // The AVI main header's dwTotalFrames and the video stream header's dwLength: say 444.
  auto patch = [&](const std::string& chunk, size_t offset) {
    const size_t at = bytes.find(chunk);
    ASSERT_NE(at, std::string::npos) << chunk;
    const uint32_t n = 444;
    for (int k = 0; k < 4; ++k)
      bytes[at + 8 + offset + k] = static_cast<char>((n >> (8 * k)) & 0xff);
  };
  patch("avih", 16);
  patch("strh", 32);
  const std::string cut = dir / "lying.avi";
  write_bytes(cut, bytes);
  const RunResult r = run_cli("probe --json '" + cut + "'");
  const auto lines = json_lines(r.out);
  ASSERT_EQ(lines.size(), 1u) << r.out;
  const int64_t count = lines[0]["frame_count"];
  EXPECT_EQ(count, 30) << r.out;
  std::string all_warnings;
  for (const auto& w : lines[0]["warnings"]) all_warnings += w.get<std::string>() + "\n";
  EXPECT_NE(
      all_warnings.find("the header says 444 frames but the stream holds " + std::to_string(count)),
      std::string::npos)
      << r.out;
}

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
