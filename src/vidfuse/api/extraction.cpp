#include "vidfuse/api/extraction.h"

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vidfuse/api/extraction_run.h"
#include "vidfuse/core/compute_dtype.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extract_progress.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/models/backbones.h"

namespace vidfuse {

namespace api {

ExtractionResult run_extraction(const data::Manifest& manifest, const data::ExtractRecipe& recipe,
                                const data::ExtractRun& run, const std::string& device_name,
                                const std::string& compute_name) {
  const DeviceChoice choice = resolve_device(device_name);
  std::ostream& log = run.log ? *run.log : std::cerr;
  log << "vidfuse: extract on " << choice.device << " (" << choice.reason << ")\n";
  const torch::Device device(choice.device);
  const torch::ScalarType compute = parse_compute_dtype(compute_name, choice.device);

  data::ExtractModels m;
  if (recipe.semantic()) {
    m.dinov3 = models::dinov3_from_spec(recipe.dinov3, compute);
    m.dinov3->to(device);
    m.dinov3->fuse_for_inference();
  }
  auto load_i3d = [&](const std::string& spec, int64_t channels) {
    models::InceptionI3d net = models::i3d_from_spec(spec, channels);
    net->to(device);
    net->fuse_for_inference(compute);
    return net;
  };
  if (recipe.motion()) m.i3d = load_i3d(recipe.i3d, 3);
  if (recipe.flow_stream()) m.flow = load_i3d(recipe.flow_i3d, 2);

  ExtractionResult result{data::extract_features(manifest, m, recipe, run), choice.device};
  // What `predict` needs to compute features of new videos the same way.
  if (!result.summary.write_error) data::write_extract_recipe(run.store_dir, recipe);
  return result;
}

}  // namespace api

namespace {

// The recipe's keys are extract.json's; a misspelt one would otherwise be ignored silently.
void check_known_keys(const nlohmann::json& given, const nlohmann::json& known,
                      const std::string& prefix) {
  for (const auto& [key, value] : given.items()) {
    if (!known.contains(key))
      throw InvalidArgument("extract: unknown recipe setting '" + prefix + key +
                            "' (extract.json's keys: dinov3, i3d, pool, semantic_size, ...)");
    if (value.is_object() && known[key].is_object())
      check_known_keys(value, known[key], prefix + key + ".");
  }
}

}  // namespace

ExtractionSummary extract(const ExtractionOptions& o) {
  if (o.manifest.empty()) throw Error("extract: no manifest given");
  if (o.store.empty()) throw Error("extract: no store folder given");
  nlohmann::json recipe_json = data::to_json(data::ExtractRecipe{});
  nlohmann::json overrides;
  try {
    overrides = nlohmann::json::parse(o.recipe_json.empty() ? "{}" : o.recipe_json);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("extract: the recipe is not valid JSON: ") + e.what());
  }
  if (!overrides.is_object()) throw InvalidArgument("extract: the recipe must be a JSON object");
  check_known_keys(overrides, recipe_json, "");
  recipe_json.merge_patch(overrides);
  const data::ExtractRecipe recipe = data::extract_recipe_from_json(recipe_json, "extract recipe");
  if (!recipe.semantic() && !recipe.motion() && !recipe.flow_stream())
    throw Error("extract: no stream to extract: give dinov3, i3d or flow_i3d weights");

  data::ExtractRun run;
  run.store_dir = o.store;
  run.shard_index = o.shard_index;
  run.shard_count = o.shard_count;
  run.workers = o.workers;
  run.prefetch = o.prefetch;
  run.semantic_batch = o.semantic_batch;
  run.motion_batch = o.motion_batch;
  run.write_npy = o.write_npy;
  run.progress = o.quiet ? data::ProgressMode::Off : data::parse_progress_mode(o.progress);
  std::ostringstream discarded;
  if (o.quiet) run.log = &discarded;

  const data::Manifest manifest = data::read_manifest(o.manifest, o.videos_dir);
  const api::ExtractionResult r =
      api::run_extraction(manifest, recipe, run, o.device, o.compute_dtype);
  const data::ExtractSummary& s = r.summary;
  ExtractionSummary out;
  out.manifest_videos = s.manifest_videos;
  out.shard_videos = s.shard_videos;
  out.done = s.done;
  out.skipped = s.skipped;
  out.failed = s.failed;
  out.not_attempted = s.not_attempted;
  out.frames = s.frames;
  out.seconds = s.seconds;
  out.videos_per_s = s.videos_per_s();
  out.loader_idle_fraction = s.loader_idle_fraction;
  out.model_seconds = s.model_seconds;
  out.stopped = s.stopped;
  out.write_error = s.write_error;
  out.stop_reason = s.stop_reason;
  out.device = r.device;
  out.store = o.store;
  out.failures_file = s.failed > 0 ? o.store + "/failures.jsonl" : "";
  return out;
}

}  // namespace vidfuse
