// `vidfuse extract --manifest M --out STORE --dinov3 PATH --i3d FILE ...`: a dataset's videos to a
// feature store (one safetensors per video; see src/vidfuse/data/feature_store.h). Rerunning the
// same command resumes; `--shard i/n` (or RANK/WORLD_SIZE) splits the work across processes and
// machines writing to one store. Exit status: 0 all done, 1 some videos failed (listed in
// STORE/failures.jsonl), 2 the job could not run or the store could not be written.
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "dtype_option.h"
#include "vidfuse/api/extraction_run.h"
#include "vidfuse/core/cluster_env.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/launch.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/core/settings_cli.h"
#include "vidfuse/data/extract_progress.h"
#include "vidfuse/data/extract_recipe.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/data/store_schema.h"
#include "vidfuse/models/backbones.h"

namespace {

using namespace vidfuse;

// The recipe's flags come from its field table (data::ExtractRecipe::fields) and are written over
// its defaults as JSON, so one reader checks them; the run's flags fill data::ExtractRun directly.
struct Args {
  std::string manifest, videos;
  settings::Overrides recipe_flags;
  data::ExtractRun run;
  std::string streams = "semantic,motion";
  std::string compute = "fp32", shard, format = "safetensors", device = "auto";
  int nproc = 1;
  bool tf32 = false;
  bool json = false;
};

torch::ScalarType storage_dtype(const std::string& name) {
  if (name == "fp16" || name == "float16") return torch::kHalf;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  throw Error("unknown --dtype '" + name + "' (fp16, bf16 or fp32)");
}

int run_extract(Args a) {
  nlohmann::json recipe_json = data::to_json(data::ExtractRecipe{});
  a.recipe_flags.apply_to(recipe_json);
  data::ExtractRecipe recipe = data::extract_recipe_from_json(recipe_json, "extract flags");
  data::ExtractRun& run = a.run;
  if (a.nproc > 1 && !launched_as_worker()) {
    std::cerr << "extract: starting " << a.nproc << " processes on this machine\n";
    const int status = launch_local_workers(a.nproc, this_command_line());
    // Each rank indexed the store when it finished; the last may have missed the others' files.
    if (status != 2) data::write_store_index(run.store_dir);
    return status;
  }
  // --streams turns backbones off; each stream it names needs its backbone.
  bool wanted[3] = {false, false, false};
  for (const auto& name : data::split_commas(a.streams)) {
    try {
      wanted[static_cast<int>(data::parse_stream(name))] = true;
    } catch (const Error& e) {
      throw Error(std::string("--streams: ") + e.what());
    }
  }
  const struct {
    data::Stream stream;
    std::string& spec;
    const char* flag;
  } backbones[] = {{data::Stream::Semantic, recipe.dinov3, "--dinov3 DIR|FILE"},
                   {data::Stream::Motion, recipe.i3d, "--i3d FILE"},
                   {data::Stream::Flow, recipe.flow_i3d, "--flow-i3d FILE"}};
  for (const auto& b : backbones) {
    if (!wanted[static_cast<int>(b.stream)]) {
      b.spec.clear();
    } else if (b.spec.empty()) {
      throw Error("the " + data::stream_name(b.stream) + " stream needs " + b.flag);
    }
  }
  if (a.format != "safetensors" && a.format != "npy")
    throw Error("--format '" + a.format + "': safetensors or npy");
  run.write_npy = a.format == "npy";
  std::tie(run.shard_index, run.shard_count) =
      a.shard.empty() ? data::shard_from_env() : data::parse_shard(a.shard);

  if (a.tf32) set_tf32(true);
  const data::Manifest manifest = data::read_manifest(a.manifest, a.videos);
  std::cerr << "extract: " << manifest.videos.size() << " videos from " << manifest.source << "\n";
  // One GPU per process: "auto" and "cuda" mean this rank's own, cuda:LOCAL_RANK (torchrun,
  // --nproc, srun).
  const api::ExtractionResult result =
      api::run_extraction(manifest, recipe, run, a.device, a.compute);
  const data::ExtractSummary& s = result.summary;
  char figures[128];
  std::snprintf(figures, sizeof(figures),
                "in %.1f s, %.2f videos/s; the models waited for the loader %.1f %% of the time",
                s.seconds, s.videos_per_s(), 100 * s.loader_idle_fraction);
  std::cerr << "extract: " << s.done << " extracted, " << s.skipped << " already complete, "
            << s.failed << " failed, " << s.not_attempted << " not attempted (" << s.shard_videos
            << " in this shard of " << s.manifest_videos << ") " << figures << "\n";
  if (s.failed > 0)
    std::cerr << "extract: failures are listed in " << run.store_dir << "/failures.jsonl\n";
  if (s.stopped)
    std::cerr << "extract: " << (s.write_error ? "error: " : "") << s.stop_reason << "\n";
  if (a.json)
    std::cout << nlohmann::json{{"manifest_videos", s.manifest_videos},
                                {"shard", std::to_string(run.shard_index) + "/" +
                                              std::to_string(run.shard_count)},
                                {"shard_videos", s.shard_videos},
                                {"done", s.done},
                                {"skipped", s.skipped},
                                {"failed", s.failed},
                                {"not_attempted", s.not_attempted},
                                {"frames", s.frames},
                                {"seconds", s.seconds},
                                {"videos_per_s", s.videos_per_s()},
                                {"model_seconds", s.model_seconds},
                                {"loader_idle_fraction", s.loader_idle_fraction},
                                {"stopped", s.stopped},
                                {"device", result.device},
                                {"stop_reason", s.stop_reason}}
                     .dump()
              << "\n";
  if (s.write_error) return 2;
  return s.failed > 0 || s.not_attempted > 0 ? 1 : 0;
}

std::function<int()> setup_extract(CLI::App& sub) {
  auto a = std::make_shared<Args>();
  data::ExtractRun& run = a->run;
  sub.add_option("--manifest", a->manifest,
                 "SSv2 JSON, Kinetics CSV, path,label CSV, list file, or a folder of videos")
      ->required();
  sub.add_option("--videos", a->videos, "Folder the manifest's ids/relative paths are in");
  sub.add_option("--out", run.store_dir, "Feature store folder (created)")->required();
  sub.add_option("--streams", a->streams, "semantic,motion,flow (any subset)")
      ->capture_default_str();
  settings::add_flags<data::ExtractRecipe>(sub, a->recipe_flags);
  const data::ExtractRecipe defaults;
  settings::add_flag<int64_t>(sub, a->recipe_flags, "--frames", "/semantic_sampling/num_segments",
                              "Semantic frames per video (segment sampling)")
      ->default_str(std::to_string(defaults.semantic_sampling.num_segments));
  settings::add_flag<double>(sub, a->recipe_flags, "--motion-fps", "/motion_sampling/fps",
                             "Motion resampling rate")
      ->default_str(settings::show(defaults.motion_sampling.fps));
  sub.add_option_function<std::string>(
         "--dtype",
         [flags = a->recipe_flags](const std::string& v) mutable {
           flags.set("/storage_dtype", data::ExtractRecipe::storage_dtype_name(storage_dtype(v)));
         },
         "Storage dtype: fp16, bf16 or fp32")
      ->check(CLI::IsMember({"fp16", "float16", "bf16", "bfloat16", "fp32", "float32"}))
      ->default_str("fp16");
  sub.add_option("--batch", run.semantic_batch, "Semantic frames per DINOv3 forward")
      ->capture_default_str();
  sub.add_option("--motion-batch", run.motion_batch, "Clips per I3D forward")
      ->capture_default_str();
  sub.add_option("--compute", a->compute, "Compute dtype: fp32 or bf16")->capture_default_str();
  sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
      ->capture_default_str();
  sub.add_option("--shard", a->shard,
                 "i/n: this process's share (default: from torchrun / Slurm / Kubernetes)");
  sub.add_option("--nproc", a->nproc, "Processes on this machine (one per GPU), one store")
      ->capture_default_str();
  sub.add_flag("--tf32", a->tf32, "Allow TF32 matrix products on CUDA (off: fp32 parity)");
  sub.add_option("--format", a->format,
                 "safetensors, or npy (also <id>_rgb.npy/_flow.npy as video_features writes)")
      ->capture_default_str();
  sub.add_option("--workers", run.workers, "Decode/transform threads")->capture_default_str();
  sub.add_option("--prefetch", run.prefetch, "Videos prepared ahead (bounds memory)")
      ->capture_default_str();
  sub.add_option_function<std::string>(
         "--progress",
         [a](const std::string& v) { a->run.progress = data::parse_progress_mode(v); },
         "auto, bar, lines or off")
      ->check(CLI::IsMember({"auto", "bar", "lines", "off"}))
      ->default_str("auto");
  sub.add_option("--stop-after", run.stop_after, "Stop after N videos (testing resume)");
  sub.add_flag("--json", a->json, "Print the summary as one JSON line on stdout");
  return [a] { return run_extract(*a); };
}

}  // namespace

VIDFUSE_COMMAND("extract", "Extract DINOv3/I3D features of a dataset's videos into a feature store",
                setup_extract);
