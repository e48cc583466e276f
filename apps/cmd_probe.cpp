// `vidfuse probe VIDEO... [--json]`: what the reader sees in each file. One bad file does not stop
// the others; the exit status says whether any failed.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "vidfuse/core/error.h"
#include "vidfuse/io/frame_source.h"
#include "vidfuse/io/video_reader.h"

namespace {

using nlohmann::json;

json probe_one(const std::string& path, int decode_threads) {
  vidfuse::io::DecodeOptions options;
  options.threads = decode_threads;
  auto source = vidfuse::io::open_frame_source(path, options);
  const vidfuse::io::MediaInfo header = source->info();
  const auto& table = source->frames();  // demux only: cheap, and surfaces truncation
  int64_t keyframes = 0;
  for (uint8_t k : table.keyframe) keyframes += k;
  const auto& info = source->info();
  // The index's count wins over the header's: a header that disagrees is reported in `warnings`
  // (a Cinepak AVI seen in the wild says 444 and holds 68).
  int64_t count = header.frame_count;
  std::string count_source = header.frame_count_source;
  if (count >= 0 && !table.times.empty() && count != table.size()) {
    count = table.size();
    count_source = info.frame_count_source;
  } else if (count < 0) {
    if (auto* reader = dynamic_cast<vidfuse::io::VideoReader*>(source.get())) {
      count = reader->count_frames_by_decoding();  // the header has none: count for real
      count_source = "decoded";
    } else {
      count = table.size();
      count_source = info.frame_count_source;
    }
  }
  json j;
  j["path"] = path;
  j["kind"] = info.kind;
  j["container"] = info.container;
  j["codec"] = info.codec;
  j["pixel_format"] = info.pixel_format;
  j["width"] = info.width;
  j["height"] = info.height;
  j["rotation"] = info.rotation;
  j["fps"] = info.fps;
  j["duration"] = info.duration;
  j["frame_count"] = count;
  j["frame_count_source"] = count_source;
  j["indexed_frames"] = table.size();
  j["keyframes"] = keyframes;
  j["bit_rate"] = info.bit_rate;
  j["warnings"] = source->warnings();
  return j;
}

void print_text(const json& j) {
  std::printf("%s\n", j["path"].get<std::string>().c_str());
  std::printf("  %-10s %s, codec %s (%s)\n", "format", j["container"].get<std::string>().c_str(),
              j["codec"].get<std::string>().c_str(), j["pixel_format"].get<std::string>().c_str());
  std::printf("  %-10s %lldx%lld, rotation %d\n", "size",
              static_cast<long long>(j["width"].get<int64_t>()),
              static_cast<long long>(j["height"].get<int64_t>()), j["rotation"].get<int>());
  std::printf("  %-10s %.3f fps, %.3f s, %lld frames (%s), %lld keyframes\n", "timing",
              j["fps"].get<double>(), j["duration"].get<double>(),
              static_cast<long long>(j["frame_count"].get<int64_t>()),
              j["frame_count_source"].get<std::string>().c_str(),
              static_cast<long long>(j["keyframes"].get<int64_t>()));
  for (const auto& w : j["warnings"]) std::printf("  warning: %s\n", w.get<std::string>().c_str());
}

std::function<int()> setup_probe(CLI::App& sub) {
  auto paths = std::make_shared<std::vector<std::string>>();
  auto as_json = std::make_shared<bool>(false);
  auto threads = std::make_shared<int>(0);
  sub.add_option("VIDEO", *paths, "Video files, frame folders or images")->required();
  sub.add_flag("--json", *as_json, "One JSON object per line");
  sub.add_option("--decode-threads", *threads, "Decoder threads (0 = auto)");
  return [=]() {
    int status = 0;
    for (const auto& path : *paths) {
      try {
        const json j = probe_one(path, *threads);
        if (*as_json)
          std::cout << j.dump() << "\n";
        else
          print_text(j);
      } catch (const std::exception& e) {
        status = 1;
        if (*as_json) std::cout << json{{"path", path}, {"error", e.what()}}.dump() << "\n";
        std::cerr << "vidfuse: error: " << e.what() << "\n";
      }
    }
    return status;
  };
}

}  // namespace

VIDFUSE_COMMAND("probe", "Show what the reader sees in videos, frame folders or images",
                setup_probe);
