// Dataset-scale feature extraction as a library call: the pipeline `vidfuse extract` runs (the
// command is a thin wrapper over this function): resumable, sharded, failures recorded in
// STORE/failures.jsonl, the recipe saved as STORE/extract.json. Public API.
#pragma once
#include <cstdint>
#include <string>

namespace vidfuse {

struct ExtractionOptions {
  std::string manifest;    // SSv2 JSON, Kinetics CSV, a path list, or a folder of videos
  std::string videos_dir;  // where the manifest's ids resolve ("" = beside the manifest)
  std::string store;       // the feature store folder (created)
  // The recipe: extract.json's keys as a JSON object, over the defaults. The backbones turn the
  // streams on: {"dinov3": "/models/dinov3-vitb16", "i3d": "rgb_imagenet.pt", "pool": 2}.
  std::string recipe_json = "{}";
  std::string device = "auto";         // auto (a GPU when there is one), cpu, cuda, cuda:N
  std::string compute_dtype = "fp32";  // fp32 or bf16
  int shard_index = 0, shard_count = 1;
  int workers = 2;                // decode + transform threads
  int prefetch = 4;               // videos prepared ahead
  int64_t semantic_batch = 32;    // frames per DINOv3 forward
  int64_t motion_batch = 1;       // clips per I3D forward
  bool write_npy = false;         // also <id>_rgb.npy / <id>_flow.npy (video_features' layout)
  std::string progress = "auto";  // auto (a bar on a terminal), bar, lines, off
  bool quiet = false;             // no log lines at all (progress "off" and no notes)
};

struct ExtractionSummary {
  int64_t manifest_videos = 0, shard_videos = 0;
  int64_t done = 0, skipped = 0, failed = 0, not_attempted = 0;
  int64_t frames = 0;
  double seconds = 0, videos_per_s = 0, loader_idle_fraction = 0, model_seconds = 0;
  bool stopped = false, write_error = false;
  std::string stop_reason;
  std::string device;  // where the models ran
  std::string store, failures_file;
};

// Throws vidfuse::Error before starting when the options are invalid (naming the option) or the
// store cannot be created; once running, a bad video is a recorded failure and an unwritable
// store ends the run with write_error set.
ExtractionSummary extract(const ExtractionOptions& options);

}  // namespace vidfuse
