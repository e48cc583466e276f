// Dataset manifests: which videos a job covers, where their files are and which class each one
// belongs to. One reader for every format users bring (SSv2 JSON, Kinetics CSV, mmaction2-style
// lists, a bare folder of videos), so `extract`, `train` and `store verify` agree on the video set.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vidfuse::data {

struct VideoEntry {
  std::string id;      // unique in the manifest; names the store file <store>/<id>.safetensors
  std::string path;    // the video file (resolved; it may not exist: extraction records that)
  int64_t label = -1;  // class index; -1 = unlabelled
};

struct Manifest {
  std::string source;  // what was read, and as which format ("ssv2 json: /d/train.json")
  std::vector<VideoEntry> videos;
  std::vector<std::string> class_names;  // by class index; empty when the manifest has none
};

// Detects the format: SSv2 JSON array (train.json/validation.json/test.json, labels.json beside it;
// class = labels[template without brackets]; video = <videos_dir>/<id>.<any video ext>), Kinetics
// CSV, generic `path,label` CSV or `path label` lines, a plain list of paths, or a directory of
// videos. videos_dir resolves ids/relative paths (default: the manifest's folder, then its "videos"
// subfolder). Errors name the file and line/entry.
Manifest read_manifest(const std::string& path, const std::string& videos_dir = "");

// File extensions read as videos when listing folders (lower case, with the dot).
bool is_video_extension(const std::string& ext);

// SSv2's class name for a template: "Pushing [something] from left to right" -> "Pushing something
// from left to right" (labels.json keys are written without the brackets). synth names its classes
// with it too, so its datasets read back with the same labels.
std::string ssv2_label_of_template(std::string template_text);

}  // namespace vidfuse::data
