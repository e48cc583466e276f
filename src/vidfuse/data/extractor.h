// Dataset-scale feature extraction: videos of a manifest in, a feature store out (see
// feature_store.h for the file layout). Each video is decoded once (the union of the frames both
// streams sample), on loader worker threads that also run the transforms, while the calling thread
// runs the models on earlier videos; semantic frames of several videos go through DINOv3 in one
// batch. Unattended-safe: every file is written atomically, a rerun skips what verifies complete,
// a bad video is recorded in failures.jsonl and skipped, and an unwritable store stops the job with
// a clear message (nothing half-written is left behind; rerunning resumes).
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <utility>
#include <vector>

#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/io/sampling.h"
#include "vidfuse/models/dinov3.h"
#include "vidfuse/models/i3d.h"

namespace vidfuse::data {

// Already constructed models; a null holder turns its stream off (it must match the recipe's
// backbone specs, which are recorded in every file's metadata with a fingerprint of the weights).
// Put them on the device and in the dtype they should compute in (inputs follow the model's first
// parameter; a fused I3D takes float32 input). The extractor switches them to eval mode.
struct ExtractModels {
  models::DinoV3ViT dinov3{nullptr};   // semantic stream
  models::InceptionI3d i3d{nullptr};   // motion stream (RGB, 3 channels)
  models::InceptionI3d flow{nullptr};  // flow stream (2 channels)
};

enum class ProgressMode { Auto, Bar, Lines, Off };  // Auto: a bar on a terminal, lines otherwise

// Where and how one run computes a recipe's features: none of it changes a stored value.
struct ExtractRun {
  std::string store_dir;
  int shard_index = 0, shard_count = 1;
  int workers = 2;              // decode + transform threads
  int prefetch = 4;             // videos being prepared or waiting (bounds memory)
  int64_t semantic_batch = 32;  // frames per DINOv3 forward (across videos)
  int64_t motion_batch = 1;     // clips per I3D forward
  bool write_npy = false;  // also <id>_rgb.npy / <id>_flow.npy ([1,1024] float32, video_features)

  ProgressMode progress = ProgressMode::Auto;
  double log_interval_s = 10;
  std::ostream* log = nullptr;  // progress and notes; nullptr = std::cerr

  // Testing/operations hook: stop (as if killed) once this many videos were written; -1 = never.
  int64_t stop_after = -1;
};

struct ExtractSummary {
  int64_t manifest_videos = 0;
  int64_t shard_videos = 0;   // of which this shard owns
  int64_t skipped = 0;        // already complete (verified) in the store
  int64_t done = 0;           // extracted and written in this run
  int64_t failed = 0;         // recorded in failures.jsonl
  int64_t not_attempted = 0;  // left when the run stopped early
  int64_t frames = 0;         // decoded frames
  double seconds = 0;
  double loader_idle_fraction = 0;  // share of the steady state the models waited for data
  double model_seconds = 0;         // time in model forwards
  bool stopped = false;             // the run ended early (write error or stop_after)
  std::string stop_reason;
  bool write_error = false;  // the store could not be written (disk full, permissions)
  double videos_per_s() const { return seconds > 0 ? done / seconds : 0; }
};

// Runs extraction for this shard's part of `manifest`. Throws vidfuse::Error before starting when
// the options are invalid or the store cannot be created/written; once running, per-video
// problems become failures and an unwritable store ends the run with summary.write_error set.
ExtractSummary extract_features(const Manifest& manifest, const ExtractModels& models,
                                const ExtractRecipe& recipe, const ExtractRun& run);

// Deterministic shard assignment by video id (FNV-1a 64 of the id, mod count).
bool in_shard(const std::string& id, int shard_index, int shard_count);
// "i/n" with 0 <= i < n; throws vidfuse::Error otherwise.
std::pair<int, int> parse_shard(const std::string& text);
// From the launcher's environment (ranks x Slurm array / Kubernetes indexed job, see
// core/cluster_env.h); {0, 1} when nothing is set.
std::pair<int, int> shard_from_env();

// The motion stream's frame indices for a video's timeline: `spec` (fixed rate by default), then
// the centred window of `clip` frames (0: all), short results looped up to `clip`. With `jitter`
// (training) the window starts at a random position instead of the middle.
std::vector<int64_t> motion_indices(const io::SamplingSpec& spec, int64_t clip,
                                    const std::vector<double>& times, double end_time,
                                    std::vector<std::string>* notes = nullptr,
                                    io::SampleRng* jitter = nullptr);

// A fingerprint of a module's parameters and buffers (names, dtypes, shapes and bytes), hex.
std::string weights_fingerprint(const torch::nn::Module& module);

// The DINOv3 semantic tensors for one batch of transformed frames [N,3,H,W]: "semantic.cls" [N,C],
// "semantic.patch" [N,h',w',C] pooled by `pool`, plus "semantic.layer_L" for `layers`. float32 CPU.
std::map<std::string, torch::Tensor> semantic_forward(models::DinoV3ViT& model,
                                                      const torch::Tensor& frames, int64_t pool,
                                                      const std::vector<int64_t>& layers = {});

}  // namespace vidfuse::data
