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
#include "vidfuse/core/cluster_env.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/launch.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/data/extract_settings.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/manifest.h"
#include "vidfuse/data/store_schema.h"
#include "vidfuse/models/backbones.h"

namespace {

using namespace vidfuse;

struct Args {
  std::string manifest, videos, out, dinov3, i3d, flow_i3d;
  std::string streams = "semantic,motion";
  int64_t frames = 16, size = 224, pool = 1, batch = 32, motion_batch = 1;
  int64_t motion_clip = 64, motion_short_side = 256, motion_crop = 224;
  double motion_fps = 25.0;
  std::vector<int64_t> layers;
  std::string dtype = "fp16", compute = "fp32", shard, format = "safetensors";
  std::string flow_method = "tvl1", progress = "auto", device = "cpu";
  int workers = 2, prefetch = 4, nproc = 1;
  bool tf32 = false;
  int64_t stop_after = -1;
  bool json = false;
};

torch::ScalarType storage_dtype(const std::string& name) {
  if (name == "fp16" || name == "float16") return torch::kHalf;
  if (name == "bf16" || name == "bfloat16") return torch::kBFloat16;
  if (name == "fp32" || name == "float32") return torch::kFloat32;
  throw Error("unknown --dtype '" + name + "' (fp16, bf16 or fp32)");
}

int run_extract(const Args& a) {
  if (a.nproc > 1 && !launched_as_worker()) {
    std::cerr << "extract: starting " << a.nproc << " processes on this machine\n";
    const int status = launch_local_workers(a.nproc, this_command_line());
    // Each rank indexed the store when it finished; the last may have missed the others' files.
    if (status != 2) data::write_store_index(a.out);
    return status;
  }
  bool sem = false, mot = false, flo = false;
  for (const auto& name : data::split_commas(a.streams)) {
    try {
      const data::Stream s = data::parse_stream(name);
      (s == data::Stream::Semantic ? sem : s == data::Stream::Motion ? mot : flo) = true;
    } catch (const Error& e) {
      throw Error(std::string("--streams: ") + e.what());
    }
  }
  if (sem && a.dinov3.empty()) throw Error("the semantic stream needs --dinov3 DIR|FILE");
  if (mot && a.i3d.empty()) throw Error("the motion stream needs --i3d FILE");
  if (flo && a.flow_i3d.empty()) throw Error("the flow stream needs --flow-i3d FILE");
  if (a.format != "safetensors" && a.format != "npy")
    throw Error("--format '" + a.format + "': safetensors or npy");

  data::ExtractOptions o;
  o.store_dir = a.out;
  o.semantic_sampling.num_segments = a.frames;
  o.semantic_size = a.size;
  o.pool = a.pool;
  o.semantic_layers = a.layers;
  o.semantic_batch = a.batch;
  o.motion_sampling.fps = a.motion_fps;
  o.motion_clip = a.motion_clip;
  o.motion_short_side = a.motion_short_side;
  o.motion_crop = a.motion_crop;
  o.motion_batch = a.motion_batch;
  o.flow_options.method = io::flow_method_from_name(a.flow_method);
  o.storage_dtype = storage_dtype(a.dtype);
  o.write_npy = a.format == "npy";
  std::tie(o.shard_index, o.shard_count) =
      a.shard.empty() ? data::shard_from_env() : data::parse_shard(a.shard);
  o.workers = a.workers;
  o.prefetch = a.prefetch;
  o.stop_after = a.stop_after;
  if (a.progress == "auto")
    o.progress = data::ProgressMode::Auto;
  else if (a.progress == "bar")
    o.progress = data::ProgressMode::Bar;
  else if (a.progress == "lines")
    o.progress = data::ProgressMode::Lines;
  else if (a.progress == "off")
    o.progress = data::ProgressMode::Off;
  else
    throw Error("--progress '" + a.progress + "': auto, bar, lines or off");

  const torch::ScalarType compute = cli::parse_compute_dtype(a.compute, a.device);
  // One GPU per process: "cuda" means this rank's own, cuda:LOCAL_RANK (torchrun, --nproc, srun).
  const torch::Device device(device_for_rank(a.device, process_place_from_env().local_rank));
  if (a.tf32) set_tf32(true);
  const data::Manifest manifest = data::read_manifest(a.manifest, a.videos);
  std::cerr << "extract: " << manifest.videos.size() << " videos from " << manifest.source << "\n";

  data::ExtractModels m;
  if (sem) {
    m.dinov3 = models::dinov3_from_spec(a.dinov3, compute);
    m.dinov3->to(device);
    m.dinov3->fuse_for_inference();
    m.dinov3_name = a.dinov3;
  }
  auto load_i3d = [&](const std::string& spec, int64_t channels) {
    models::InceptionI3d net = models::i3d_from_spec(spec, channels);
    net->to(device);
    net->fuse_for_inference(compute);
    return net;
  };
  if (mot) {
    m.i3d = load_i3d(a.i3d, 3);
    m.i3d_name = a.i3d;
  }
  if (flo) {
    m.flow = load_i3d(a.flow_i3d, 2);
    m.flow_name = a.flow_i3d;
  }

  const data::ExtractSummary s = data::extract_features(manifest, m, o);
  // What `predict` needs to compute features of new videos the same way.
  data::ExtractSettings settings;
  settings.options = o;
  settings.dinov3 = sem ? a.dinov3 : "";
  settings.i3d = mot ? a.i3d : "";
  settings.flow_i3d = flo ? a.flow_i3d : "";
  if (!s.write_error) data::write_extract_settings(a.out, settings);
  char figures[128];
  std::snprintf(figures, sizeof(figures),
                "in %.1f s, %.2f videos/s; the models waited for the loader %.1f %% of the time",
                s.seconds, s.videos_per_s(), 100 * s.loader_idle_fraction);
  std::cerr << "extract: " << s.done << " extracted, " << s.skipped << " already complete, "
            << s.failed << " failed, " << s.not_attempted << " not attempted (" << s.shard_videos
            << " in this shard of " << s.manifest_videos << ") " << figures << "\n";
  if (s.failed > 0) std::cerr << "extract: failures are listed in " << a.out << "/failures.jsonl\n";
  if (s.stopped)
    std::cerr << "extract: " << (s.write_error ? "error: " : "") << s.stop_reason << "\n";
  if (a.json)
    std::cout << nlohmann::json{{"manifest_videos", s.manifest_videos},
                                {"shard", std::to_string(o.shard_index) + "/" +
                                              std::to_string(o.shard_count)},
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
                                {"stop_reason", s.stop_reason}}
                     .dump()
              << "\n";
  if (s.write_error) return 2;
  return s.failed > 0 || s.not_attempted > 0 ? 1 : 0;
}

std::function<int()> setup_extract(CLI::App& sub) {
  auto a = std::make_shared<Args>();
  sub.add_option("--manifest", a->manifest,
                 "SSv2 JSON, Kinetics CSV, path,label CSV, list file, or a folder of videos")
      ->required();
  sub.add_option("--videos", a->videos, "Folder the manifest's ids/relative paths are in");
  sub.add_option("--out", a->out, "Feature store folder (created)")->required();
  sub.add_option("--dinov3", a->dinov3,
                 "DINOv3 HF model folder, checkpoint file, or builtin (small, random weights)");
  sub.add_option("--i3d", a->i3d, "I3D RGB checkpoint, or builtin (small, random weights)");
  sub.add_option("--flow-i3d", a->flow_i3d, "I3D flow checkpoint (for --streams ...,flow)");
  sub.add_option("--streams", a->streams, "semantic,motion,flow (any subset)")
      ->capture_default_str();
  sub.add_option("--frames", a->frames, "Semantic frames per video (segment sampling)")
      ->capture_default_str();
  sub.add_option("--size", a->size, "Semantic input size (multiple of 16)")->capture_default_str();
  sub.add_option("--pool", a->pool, "Average-pool the patch grid by this factor (1 = full)")
      ->capture_default_str();
  sub.add_option("--layers", a->layers, "Also store these DINOv3 layers' patch grids");
  sub.add_option("--batch", a->batch, "Semantic frames per DINOv3 forward")->capture_default_str();
  sub.add_option("--motion-fps", a->motion_fps, "Motion resampling rate")->capture_default_str();
  sub.add_option("--motion-clip", a->motion_clip, "Frames of the centred motion clip (0 = all)")
      ->capture_default_str();
  sub.add_option("--motion-short-side", a->motion_short_side)->capture_default_str();
  sub.add_option("--motion-crop", a->motion_crop)->capture_default_str();
  sub.add_option("--motion-batch", a->motion_batch, "Clips per I3D forward")->capture_default_str();
  sub.add_option("--flow-method", a->flow_method, "tvl1 or dis")->capture_default_str();
  sub.add_option("--dtype", a->dtype, "Storage dtype: fp16, bf16 or fp32")->capture_default_str();
  sub.add_option("--compute", a->compute, "Compute dtype: fp32 or bf16")->capture_default_str();
  sub.add_option("--device", a->device, "cpu, cuda, cuda:N")->capture_default_str();
  sub.add_option("--shard", a->shard,
                 "i/n: this process's share (default: from torchrun / Slurm / Kubernetes)");
  sub.add_option("--nproc", a->nproc, "Processes on this machine (one per GPU), one store")
      ->capture_default_str();
  sub.add_flag("--tf32", a->tf32, "Allow TF32 matrix products on CUDA (off: fp32 parity)");
  sub.add_option("--format", a->format,
                 "safetensors, or npy (also <id>_rgb.npy/_flow.npy as video_features writes)")
      ->capture_default_str();
  sub.add_option("--workers", a->workers, "Decode/transform threads")->capture_default_str();
  sub.add_option("--prefetch", a->prefetch, "Videos prepared ahead (bounds memory)")
      ->capture_default_str();
  sub.add_option("--progress", a->progress, "auto, bar, lines or off")->capture_default_str();
  sub.add_option("--stop-after", a->stop_after, "Stop after N videos (testing resume)");
  sub.add_flag("--json", a->json, "Print the summary as one JSON line on stdout");
  return [a] { return run_extract(*a); };
}

}  // namespace

VIDFUSE_COMMAND("extract", "Extract DINOv3/I3D features of a dataset's videos into a feature store",
                setup_extract);
