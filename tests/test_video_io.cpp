// VideoIO*: the writer and reader round trip on every container/codec we promise, with frames whose
// pixels encode their index, so every check is "exactly these frames came back".
// VideoErrors*: bad input gives one clear error naming the file (or a warning listing what was
// skipped when part of the file is still usable).
extern "C" {
#include <libavformat/avformat.h>
}

#include <filesystem>

#include "test_video_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/image.h"
#include "vidfuse/io/video_reader.h"

using namespace vidfuse;
using namespace vidfuse::test;
using io::VideoReader;

namespace {

bool any_contains(const std::vector<std::string>& v, const std::string& part) {
  for (const auto& s : v)
    if (s.find(part) != std::string::npos) return true;
  return false;
}

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

// Copies a video's packets into a new file, leaving out the first `drop` video packets (decode
// order): the result starts with frames that depend on a keyframe it no longer has.
void remux_dropping(const std::string& src, const std::string& dst, int drop) {
  AVFormatContext* in = nullptr;
  ASSERT_GE(avformat_open_input(&in, src.c_str(), nullptr, nullptr), 0);
  ASSERT_GE(avformat_find_stream_info(in, nullptr), 0);
  AVFormatContext* out = nullptr;
  ASSERT_GE(avformat_alloc_output_context2(&out, nullptr, nullptr, dst.c_str()), 0);
  AVStream* os = avformat_new_stream(out, nullptr);
  ASSERT_GE(avcodec_parameters_copy(os->codecpar, in->streams[0]->codecpar), 0);
  os->codecpar->codec_tag = 0;
  os->time_base = in->streams[0]->time_base;
  ASSERT_GE(avio_open(&out->pb, dst.c_str(), AVIO_FLAG_WRITE), 0);
  ASSERT_GE(avformat_write_header(out, nullptr), 0);
  AVPacket* pkt = av_packet_alloc();
  int seen = 0;
  while (av_read_frame(in, pkt) >= 0) {
    if (pkt->stream_index == 0 && seen++ >= drop) {
      pkt->stream_index = 0;
      av_packet_rescale_ts(pkt, in->streams[0]->time_base, os->time_base);
      pkt->pos = -1;
      ASSERT_GE(av_interleaved_write_frame(out, pkt), 0);
    }
    av_packet_unref(pkt);
  }
  av_write_trailer(out);
  av_packet_free(&pkt);
  avio_closep(&out->pb);
  avformat_free_context(out);
  avformat_close_input(&in);
}

// Byte range of the `k`-th video packet's payload in the file.
std::pair<int64_t, int64_t> packet_range(const std::string& path, int k) {
  AVFormatContext* in = nullptr;
  EXPECT_GE(avformat_open_input(&in, path.c_str(), nullptr, nullptr), 0);
  avformat_find_stream_info(in, nullptr);
  AVPacket* pkt = av_packet_alloc();
  std::pair<int64_t, int64_t> range{-1, -1};
  int seen = 0;
  while (av_read_frame(in, pkt) >= 0) {
    if (pkt->stream_index == 0 && seen++ == k) range = {pkt->pos, pkt->size};
    av_packet_unref(pkt);
  }
  av_packet_free(&pkt);
  avformat_close_input(&in);
  return range;
}

}  // namespace

class VideoIO : public ::testing::TestWithParam<std::string> {};

TEST_P(VideoIO, RoundTripsEveryFrameExactly) {
  const TestVideo& v = TestVideos::get()[GetParam()];
  VideoReader reader(v.path, {});
  const auto& info = reader.info();
  EXPECT_EQ(info.codec, v.codec);
  EXPECT_EQ(info.width, v.width);
  EXPECT_EQ(info.height, v.height);
  EXPECT_EQ(info.kind, "video");
  EXPECT_NEAR(info.fps, v.fps, 0.01 * v.fps);
  EXPECT_EQ(reader.frames().size(), v.frames);
  EXPECT_EQ(reader.info().frame_count, v.frames);
  EXPECT_NEAR(reader.info().duration, v.frames / v.fps, 1.01 / v.fps);
  std::vector<std::string> warnings;
  torch::Tensor all = reader.read_all(&warnings);
  EXPECT_TRUE(warnings.empty()) << join(warnings);
  ASSERT_EQ(all.sizes(), (std::vector<int64_t>{v.frames, v.height, v.width, 3}));
  EXPECT_EQ(decode_indices(all), iota(v.frames));
  // Timestamps are the written ones: k / fps.
  for (int64_t i = 0; i < v.frames; ++i) EXPECT_NEAR(reader.frames().times[i], i / v.fps, 1e-3);
}

TEST_P(VideoIO, ReadsAnySubsetInTheOrderAsked) {
  const TestVideo& v = TestVideos::get()[GetParam()];
  VideoReader reader(v.path, {});
  const std::vector<int64_t> want = {v.frames - 1, 3, 3, 0, v.frames / 2, 7};
  torch::Tensor got = reader.read(want);
  EXPECT_EQ(decode_indices(got), want);
  // The reader is reusable: a second read on the same object (it seeks back).
  EXPECT_EQ(decode_indices(reader.read({1, 2})), (std::vector<int64_t>{1, 2}));
}

INSTANTIATE_TEST_SUITE_P(Formats, VideoIO,
                         ::testing::Values("h264", "vp9", "vp8", "mpeg4", "mpeg4_bframes", "mjpeg",
                                           "h264_mkv", "h264_bframes_mkv", "odd_vp9", "odd_h264"));

TEST(VideoReader, ReportsContainerAndCodec) {
  auto& vids = TestVideos::get();
  EXPECT_NE(VideoReader(vids["h264"].path).info().container.find("mp4"), std::string::npos);
  EXPECT_NE(VideoReader(vids["vp9"].path).info().container.find("webm"), std::string::npos);
  EXPECT_EQ(VideoReader(vids["mpeg4"].path).info().container, "avi");
  // MP4 and AVI headers carry a frame count; WebM does not, so it comes from the index.
  EXPECT_EQ(VideoReader(vids["h264"].path).info().frame_count_source, "header");
  VideoReader webm(vids["vp9"].path);
  EXPECT_EQ(webm.info().frame_count, -1);
  EXPECT_EQ(webm.frames().size(), 30);
  EXPECT_EQ(webm.info().frame_count_source, "index");
  EXPECT_EQ(webm.count_frames_by_decoding(), 30);
  EXPECT_EQ(webm.info().frame_count_source, "decoded");
}

TEST(VideoReader, StreamWithoutTimestampsOrCountIsCountedByDecoding) {
  const TestVideo& v = TestVideos::get()["raw"];
  VideoReader reader(v.path);
  EXPECT_EQ(reader.info().container, "h264");
  EXPECT_EQ(reader.frames().size(), v.frames);
  EXPECT_EQ(decode_indices(reader.read_all()), iota(v.frames));
  EXPECT_EQ(decode_indices(reader.read({15, 4})), (std::vector<int64_t>{15, 4}));
  EXPECT_EQ(reader.count_frames_by_decoding(), v.frames);
}

TEST(VideoReader, SparseReadsSeekAndDenseReadsDoNot) {
  const TestVideo& v = TestVideos::get()["long"];  // 150 frames, keyframe every 10, B-frames
  io::DecodeOptions one_thread;
  one_thread.threads = 1;
  VideoReader reader(v.path, one_thread);
  const std::vector<int64_t> sparse = {5, 64, 121, 147};
  EXPECT_EQ(decode_indices(reader.read(sparse)), sparse);
  EXPECT_GE(reader.last_read_stats().seeks, 2);
  EXPECT_LT(reader.last_read_stats().decoded, 60);
  EXPECT_EQ(reader.last_read_stats().converted, 4);

  EXPECT_EQ(decode_indices(reader.read(iota(150))), iota(150));
  EXPECT_EQ(reader.last_read_stats().seeks, 0);
  EXPECT_EQ(reader.last_read_stats().decoded, 150);

  // Frames close together are decoded through, not sought: 3 frames apart < a GOP.
  const std::vector<int64_t> dense = {30, 33, 36, 39, 42, 45, 48};
  EXPECT_EQ(decode_indices(reader.read(dense)), dense);
  EXPECT_EQ(reader.last_read_stats().seeks, 1);  // once, to the keyframe at 30

  // Reads stop at the last wanted frame.
  reader.read({0, 1, 2});
  EXPECT_LT(reader.last_read_stats().decoded, 12);
}

TEST(VideoReader, SkipsNonReferenceFramesNobodyWants) {
  const TestVideo& v = TestVideos::get()["long"];  // B-frames: some are never referenced
  std::vector<int64_t> want;
  for (int64_t i = 9; i < 150; i += 10) want.push_back(i);  // the last frame of each GOP
  int64_t decoded[2] = {0, 0};
  for (bool skip : {false, true}) {
    io::DecodeOptions o;
    o.threads = 1;
    o.skip_unneeded = skip;
    VideoReader reader(v.path, o);
    EXPECT_EQ(decode_indices(reader.read(want)), want) << "skip " << skip;
    decoded[skip] = reader.last_read_stats().decoded;
  }
  EXPECT_LT(decoded[1], decoded[0]);
}

TEST(VideoReader, SeekModesAgreeFrameForFrame) {
  const TestVideo& v = TestVideos::get()["long"];
  std::vector<int64_t> want;
  for (int64_t i = 1; i < 150; i += 13) want.push_back(i);
  for (auto mode : {io::SeekMode::Auto, io::SeekMode::Never, io::SeekMode::Always}) {
    for (int threads : {1, 3}) {
      io::DecodeOptions o;
      o.seek = mode;
      o.threads = threads;
      VideoReader reader(v.path, o);
      EXPECT_EQ(decode_indices(reader.read(want)), want)
          << "mode " << static_cast<int>(mode) << " threads " << threads;
      if (mode == io::SeekMode::Never) {
        EXPECT_EQ(reader.last_read_stats().seeks, 0);
      }
    }
  }
}

TEST(VideoReader, VariableFrameRateUsesTimestamps) {
  const TestVideo& v = TestVideos::get()["vfr"];
  VideoReader reader(v.path);
  const auto& table = reader.frames();
  ASSERT_EQ(table.size(), v.frames);
  for (int64_t i = 0; i < v.frames; ++i) EXPECT_NEAR(table.times[i], v.times[i], 1e-3) << i;
  EXPECT_EQ(decode_indices(reader.read_all()), iota(v.frames));
}

TEST(VideoReader, HonoursRotationMetadata) {
  for (const char* name : {"rot90", "rot270"}) {
    const TestVideo& v = TestVideos::get()[name];
    const int rotation = std::string(name) == "rot90" ? 90 : 270;
    VideoReader reader(v.path);
    EXPECT_EQ(reader.info().rotation, rotation);
    EXPECT_EQ(reader.info().width, v.height);
    EXPECT_EQ(reader.info().height, v.width);
    torch::Tensor got = reader.read({5});
    ASSERT_EQ(got.sizes(), (std::vector<int64_t>{1, v.width, v.height, 3}));
    // rot90 dims {0,1} turns counter-clockwise; a clockwise turn is k = -1.
    torch::Tensor expected =
        torch::rot90(code_frame(5, v.height, v.width), rotation == 90 ? -1 : 1, {0, 1});
    const double diff =
        (got[0].to(torch::kFloat) - expected.to(torch::kFloat)).abs().mean().item<double>();
    EXPECT_LT(diff, 8.0) << name;
    // The wrong direction would be far off.
    const double wrong =
        (got[0].to(torch::kFloat) - torch::rot90(expected, 2, {0, 1}).to(torch::kFloat))
            .abs()
            .mean()
            .item<double>();
    EXPECT_GT(wrong, 40.0) << name;

    io::DecodeOptions raw;
    raw.apply_rotation = false;
    VideoReader unrotated(v.path, raw);
    EXPECT_EQ(unrotated.info().rotation, rotation);
    EXPECT_EQ(decode_indices(unrotated.read({0, 11})), (std::vector<int64_t>{0, 11}));
  }
}

TEST(VideoReader, FirstFrameNotAKeyframe) {
  ScratchDir dir;
  const std::string path = dir / "cut.mkv";
  remux_dropping(TestVideos::get()["h264_mkv"].path, path, 3);  // keyframes at 0, 10, 20
  VideoReader reader(path);
  // Frames 3..9 depend on the dropped keyframe: the video starts at the next keyframe.
  EXPECT_EQ(reader.frames().size(), 14);
  EXPECT_TRUE(any_contains(reader.warnings(), "before its first keyframe"))
      << join(reader.warnings());
  std::vector<std::string> warnings;
  EXPECT_EQ(decode_indices(reader.read_all(&warnings)), iota(14, 10));
  EXPECT_TRUE(warnings.empty()) << join(warnings);
}

TEST(VideoReader, IndexOutOfRangeNamesTheFile) {
  const TestVideo& v = TestVideos::get()["vp8"];
  VideoReader reader(v.path);
  EXPECT_THROW_WITH(reader.read({0, 20}), v.path, "out of range", "20 frames");
}

// ---- bad input --------------------------------------------------------------------------------

TEST(VideoErrors, MissingEmptyGarbageTextAndDirectory) {
  ScratchDir dir;
  EXPECT_THROW_WITH(VideoReader(dir / "nope.mp4"), dir / "nope.mp4", "no such file");
  write_bytes(dir / "empty.mp4", "");
  EXPECT_THROW_WITH(VideoReader(dir / "empty.mp4"), dir / "empty.mp4", "empty file");
  std::string garbage(4096, '\0');
  for (size_t i = 0; i < garbage.size(); ++i) garbage[i] = static_cast<char>((i * 7919 + 13) % 251);
  write_bytes(dir / "garbage.mp4", garbage);
  EXPECT_THROW_WITH(VideoReader(dir / "garbage.mp4"), dir / "garbage.mp4");
  write_bytes(dir / "notes.txt", "this is not a video\nat all\n");
  EXPECT_THROW_WITH(VideoReader(dir / "notes.txt"), dir / "notes.txt", "not a video");
  EXPECT_THROW_WITH(VideoReader(dir / "garbage.mp4"), "not a video");
  EXPECT_THROW_WITH(VideoReader(dir.path().string()), dir.path().string(), "directory");
  std::filesystem::create_directory(dir / "frames");
  EXPECT_THROW_WITH(io::open_frame_source(dir / "frames"), dir / "frames", "no frame images");
}

TEST(VideoErrors, NoVideoStream) {
  ScratchDir dir;
  // A WAV file: 0.1 s of 8 kHz 16-bit mono silence.
  const int samples = 800;
  std::string wav = "RIFF";
  auto u32 = [](uint32_t v) {
    return std::string{char(v), char(v >> 8), char(v >> 16), char(v >> 24)};
  };
  auto u16 = [](uint16_t v) { return std::string{char(v), char(v >> 8)}; };
  wav += u32(36 + samples * 2) + "WAVEfmt " + u32(16) + u16(1) + u16(1) + u32(8000) + u32(16000) +
         u16(2) + u16(16) + "data" + u32(samples * 2) + std::string(samples * 2, '\0');
  write_bytes(dir / "sound.wav", wav);
  EXPECT_THROW_WITH(VideoReader(dir / "sound.wav"), dir / "sound.wav", "no video stream", "audio");
}

TEST(VideoErrors, TruncatedMp4WithIndexAtTheEnd) {
  ScratchDir dir;
  const std::string bytes = read_bytes(TestVideos::get()["h264"].path);
  write_bytes(dir / "cut.mp4", bytes.substr(0, bytes.size() * 6 / 10));
  EXPECT_THROW_WITH(VideoReader(dir / "cut.mp4").read({0}), dir / "cut.mp4");
}

TEST(VideoErrors, TruncatedWebmDecodesWhatIsThere) {
  ScratchDir dir;
  const std::string bytes = read_bytes(TestVideos::get()["vp9"].path);
  write_bytes(dir / "cut.webm", bytes.substr(0, bytes.size() / 2));
  VideoReader reader(dir / "cut.webm");
  const int64_t n = reader.frames().size();
  EXPECT_GT(n, 5);
  EXPECT_LT(n, 30);
  EXPECT_EQ(decode_indices(reader.read_all()), iota(n));
}

TEST(VideoErrors, TruncatedDataAfterTheIndexKeepsWhatIsThere) {
  ScratchDir dir;
  io::VideoWriterOptions o;
  o.codec = "mjpeg";
  o.fps = 12;
  o.faststart = true;  // index first: the cut removes frame data, not the index
  io::write_video(dir / "full.mov", code_frames(20, 48, 64), o);
  const std::string bytes = read_bytes(dir / "full.mov");
  write_bytes(dir / "cut.mov", bytes.substr(0, bytes.size() * 6 / 10));
  VideoReader reader(dir / "cut.mov");
  // The index promises 20 frames; only those whose data is there make it into the frame table,
  // and the shortfall is reported.
  const int64_t n = reader.frames().size();
  EXPECT_GT(n, 5);
  EXPECT_LT(n, 20);
  EXPECT_TRUE(any_contains(reader.warnings(), "truncated")) << join(reader.warnings());
  EXPECT_TRUE(any_contains(reader.warnings(), dir / "cut.mov")) << join(reader.warnings());
  std::vector<std::string> warnings;
  const auto got = decode_indices(reader.read_all(&warnings));
  ASSERT_EQ(static_cast<int64_t>(got.size()), n);
  for (int64_t i = 0; i + 1 < n; ++i) EXPECT_EQ(got[i], i);
  // The cut lands inside the last packet: that frame fails to decode, is replaced by the one
  // before it, and the warning names it.
  if (got[n - 1] != n - 1) {
    EXPECT_EQ(got[n - 1], n - 2);
    EXPECT_TRUE(any_contains(warnings, "[" + std::to_string(n - 1) + "]")) << join(warnings);
  }
}

TEST(VideoErrors, CorruptFrameInTheMiddleIsSkippedAndReported) {
  ScratchDir dir;
  const std::string path = dir / "corrupt.avi";
  io::VideoWriterOptions o;
  o.codec = "mjpeg";
  o.fps = 12;
  io::write_video(path, code_frames(20, 48, 64), o);
  auto [pos, size] = packet_range(path, 9);
  ASSERT_GT(pos, 0);
  std::string bytes = read_bytes(path);
  // Wipe the JPEG of frame 9 (keep the AVI chunk header so the container stays readable).
  for (int64_t i = pos + 8; i < pos + size; ++i) bytes[i] = 0;
  write_bytes(path, bytes);
  VideoReader reader(path);
  std::vector<std::string> warnings;
  const auto got = decode_indices(reader.read_all(&warnings));
  ASSERT_EQ(got.size(), 20u);
  for (int i = 0; i < 20; ++i) {
    if (i != 9) {
      EXPECT_EQ(got[i], i);
    }
  }
  EXPECT_EQ(got[9], 8);  // what was on screen instead: the frame before
  EXPECT_TRUE(any_contains(warnings, "[9]")) << join(warnings);
  EXPECT_TRUE(any_contains(warnings, path)) << join(warnings);
}

// ---- frame folders and single images ----------------------------------------------------------

TEST(VideoFrameSource, FolderOfFramesInNaturalOrder) {
  ScratchDir dir;
  const std::string folder = dir / "clip";
  std::filesystem::create_directory(folder);
  // Unpadded numbers on purpose: img_10 must come after img_9.
  for (int i = 0; i < 12; ++i)
    io::write_image_rgb(folder + "/img_" + std::to_string(i + 1) + ".png", code_frame(i, 48, 64));
  write_bytes(folder + "/notes.txt", "ignored");
  io::DecodeOptions o;
  o.image_folder_fps = 12;
  auto src = io::open_frame_source(folder, o);
  EXPECT_EQ(src->info().kind, "frames");
  EXPECT_EQ(src->info().frame_count, 12);
  EXPECT_EQ(src->info().width, 64);
  EXPECT_EQ(src->frames().size(), 12);
  EXPECT_NEAR(src->frames().times[6], 0.5, 1e-9);
  EXPECT_EQ(decode_indices(src->read({11, 0, 9, 9})), (std::vector<int64_t>{11, 0, 9, 9}));

  // A damaged frame file: replaced by its neighbour, with a warning naming the folder.
  write_bytes(folder + "/img_5.png", "not a png");
  auto again = io::open_frame_source(folder, o);
  std::vector<std::string> warnings;
  EXPECT_EQ(decode_indices(again->read(iota(12), &warnings)),
            (std::vector<int64_t>{0, 1, 2, 3, 3, 5, 6, 7, 8, 9, 10, 11}));
  EXPECT_TRUE(any_contains(warnings, folder)) << join(warnings);
  EXPECT_TRUE(any_contains(warnings, "[4]")) << join(warnings);
}

TEST(VideoFrameSource, SingleImageAndVideoBehindOneInterface) {
  ScratchDir dir;
  io::write_image_rgb(dir / "still.jpg", code_frame(37, 48, 64));
  auto image = io::open_frame_source(dir / "still.jpg");
  EXPECT_EQ(image->info().kind, "image");
  EXPECT_EQ(image->frames().size(), 1);
  EXPECT_EQ(decode_indices(image->read({0, 0})), (std::vector<int64_t>{37, 37}));
  auto video = io::open_frame_source(TestVideos::get()["vp9"].path);
  EXPECT_EQ(video->info().kind, "video");
  EXPECT_EQ(decode_indices(video->read({4})), (std::vector<int64_t>{4}));
  EXPECT_THROW_WITH(io::open_frame_source(dir / "missing.jpg"), dir / "missing.jpg");
}
