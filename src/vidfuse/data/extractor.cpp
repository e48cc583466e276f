#include "vidfuse/data/extractor.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/background_writer.h"
#include "vidfuse/core/cluster_env.h"
#include "vidfuse/core/device_stager.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extract_progress.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_schema.h"
#include "vidfuse/data/stream_inputs.h"
#include "vidfuse/io/prefetch_loader.h"

namespace vidfuse::data {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

bool in_shard(const std::string& id, int shard_index, int shard_count) {
  if (shard_count <= 1) return true;
  return static_cast<int>(fnv1a64(id) % static_cast<uint64_t>(shard_count)) == shard_index;
}

std::pair<int, int> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  int i = -1, n = -1;
  try {
    size_t p1 = 0, p2 = 0;
    if (slash == std::string::npos) throw std::invalid_argument("");
    i = std::stoi(text.substr(0, slash), &p1);
    n = std::stoi(text.substr(slash + 1), &p2);
    if (p1 != slash || p2 != text.size() - slash - 1) throw std::invalid_argument("");
  } catch (const std::exception&) {
    throw Error("--shard '" + text + "': expected i/n, e.g. 0/4");
  }
  if (n < 1 || i < 0 || i >= n) throw Error("--shard '" + text + "': need 0 <= i < n");
  return {i, n};
}

std::pair<int, int> shard_from_env() {
  const ShardPlace place = shard_place_from_env();
  return {place.index, place.count};
}

std::vector<int64_t> motion_indices(const io::SamplingSpec& spec, int64_t clip,
                                    const std::vector<double>& times, double end_time,
                                    std::vector<std::string>* notes, io::SampleRng* jitter) {
  io::SamplingSpec s = spec;
  if (clip > 0 && s.kind == io::SamplingSpec::Kind::FixedRate)
    s.min_frames = std::max(s.min_frames, clip);  // short videos loop up to one full clip
  io::Sample sample = io::sample_frames(s, times, end_time);
  if (notes) notes->insert(notes->end(), sample.notes.begin(), sample.notes.end());
  std::vector<int64_t> idx = std::move(sample.indices);
  if (clip > 0 && static_cast<int64_t>(idx.size()) > clip) {
    const int64_t slack = static_cast<int64_t>(idx.size()) - clip;
    const int64_t start = jitter ? jitter->uniform_int(slack + 1) : slack / 2;
    idx = std::vector<int64_t>(idx.begin() + start, idx.begin() + start + clip);
  } else if (clip > 0 && static_cast<int64_t>(idx.size()) < clip) {
    // Samplers other than fixed rate can come up short: loop.
    const size_t n = idx.size();
    for (size_t k = n; k < static_cast<size_t>(clip); ++k) idx.push_back(idx[k % n]);
  }
  return idx;
}

std::string weights_fingerprint(const torch::nn::Module& module) {
  uint64_t h = 14695981039346656037ull;
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    h = fnv1a64(name.data(), name.size(), h);
    torch::Tensor c = t.detach().to(torch::kCPU).contiguous();
    const std::string dtype = c10::toString(c.scalar_type());
    h = fnv1a64(dtype.data(), dtype.size(), h);
    const auto sizes = c.sizes().vec();
    h = fnv1a64(sizes.data(), sizes.size() * sizeof(int64_t), h);
    h = fnv1a64(c.data_ptr(), c.numel() * c.element_size(), h);
  };
  for (const auto& p : module.named_parameters()) add(p.key(), p.value());
  for (const auto& b : module.named_buffers()) add(b.key(), b.value());
  char buf[32];
  std::snprintf(buf, sizeof(buf), "fnv1a64:%016llx", static_cast<unsigned long long>(h));
  return buf;
}

std::map<std::string, torch::Tensor> semantic_forward(models::DinoV3ViT& model,
                                                      const torch::Tensor& frames, int64_t pool,
                                                      const std::vector<int64_t>& layers) {
  torch::NoGradGuard no_grad;
  const auto param = model->parameters().front();
  const torch::Tensor x = frames.to(param.device(), param.scalar_type());
  models::DinoV3Output out = model->forward(x, layers);
  auto grid = [&](const torch::Tensor& patch) {  // [N,h,w,C] → pooled, float32 CPU
    return models::pool_patch_grid(patch.to(torch::kFloat32), pool).to(torch::kCPU).contiguous();
  };
  std::map<std::string, torch::Tensor> r;
  r[kSemanticCls] = out.pooler_output.to(torch::kFloat32).to(torch::kCPU).contiguous();
  r[kSemanticPatch] = grid(out.patch_tokens);
  const int64_t prefix = 1 + model->config().num_register_tokens;
  const auto& ps = out.patch_tokens.sizes();
  for (size_t k = 0; k < layers.size(); ++k) {
    torch::Tensor p = out.intermediate[k].slice(1, prefix).reshape({ps[0], ps[1], ps[2], ps[3]});
    r[semantic_layer_tensor(layers[k])] = grid(p);
  }
  return r;
}

namespace {

// The dtype I3D takes its input in: float32 once fused (the fused units convert inside), else
// its parameters' dtype.
torch::ScalarType motion_input_dtype(const models::InceptionI3d& model) {
  return model->fused() ? torch::kFloat32 : model->parameters().front().scalar_type();
}

// Motion features of a batch of clips [B,C,T,H,W]: mixed_5c [B,1024,T',H',W'] and the 1024-d
// features averaged over every avg-pool output position → [B,1024]. float32 CPU.
std::pair<torch::Tensor, torch::Tensor> motion_forward(models::InceptionI3d& model,
                                                       const torch::Tensor& clips) {
  torch::NoGradGuard no_grad;
  const torch::Tensor x = clips.to(model->parameters().front().device(), motion_input_dtype(model));
  models::I3DOutput out = model->forward(x);
  return {out.mixed_5c.to(torch::kFloat32).to(torch::kCPU).contiguous(),
          out.features.to(torch::kFloat32).mean({2, 3, 4}).to(torch::kCPU).contiguous()};
}

std::string describe_dinov3(const models::DinoV3ViT& m) {
  const auto& c = m->config();
  std::ostringstream o;
  o << "dinov3-vit hidden=" << c.hidden_size << " layers=" << c.num_hidden_layers
    << " heads=" << c.num_attention_heads << " patch=" << c.patch_size
    << " registers=" << c.num_register_tokens << (c.use_gated_mlp ? " swiglu" : "");
  return o.str();
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

torch::Device device_of(const torch::nn::Module& m) { return m.parameters().front().device(); }

// ---- The plan: what this run must do ------------------------------------------------------------

std::vector<Stream> recipe_streams(const ExtractRecipe& r) {
  std::vector<Stream> streams;
  if (r.semantic()) streams.push_back(Stream::Semantic);
  if (r.motion()) streams.push_back(Stream::Motion);
  if (r.flow_stream()) streams.push_back(Stream::Flow);
  return streams;
}

std::vector<std::string> stream_names(const std::vector<Stream>& streams) {
  std::vector<std::string> names;
  for (Stream s : streams) names.push_back(stream_name(s));
  return names;
}

// Everything that can be checked before an hour of decoding: fail now.
void check_extraction(const ExtractModels& m, const ExtractRecipe& r, const ExtractRun& run) {
  auto match = [](bool named, bool given, const std::string& stream, const char* spec) {
    if (named && !given)
      throw Error("extract: the recipe names a " + stream + " backbone (" + spec + ") but no " +
                  stream + " model was given");
    if (!named && given)
      throw Error("extract: a " + stream + " model was given but the recipe names no " + stream +
                  " backbone (set " + spec + ")");
  };
  match(r.semantic(), !m.dinov3.is_empty(), "semantic", "dinov3");
  match(r.motion(), !m.i3d.is_empty(), "motion", "i3d");
  match(r.flow_stream(), !m.flow.is_empty(), "flow", "flow_i3d");
  if (recipe_streams(r).empty()) throw Error("extract: no model given (semantic, motion or flow)");
  if (run.store_dir.empty()) throw Error("extract: no output store folder");
  if (run.shard_count < 1 || run.shard_index < 0 || run.shard_index >= run.shard_count)
    throw Error("extract: shard " + std::to_string(run.shard_index) + "/" +
                std::to_string(run.shard_count) + " is invalid");
  if (r.pool < 1) throw Error("extract: pool must be >= 1");
  if (run.semantic_batch < 1 || run.motion_batch < 1)
    throw Error("extract: batch sizes must be >= 1");
  if (r.motion() && m.i3d->config().in_channels != 3)
    throw Error("extract: the motion model takes " + std::to_string(m.i3d->config().in_channels) +
                " channels, RGB needs 3");
  if (r.flow_stream() && m.flow->config().in_channels != 2)
    throw Error("extract: the flow model takes " + std::to_string(m.flow->config().in_channels) +
                " channels, flow needs 2");
  if ((r.motion() || r.flow_stream()) && r.motion_crop < models::kI3DMinSize)
    throw Error("extract: motion crop " + std::to_string(r.motion_crop) + " is below I3D's " +
                std::to_string(models::kI3DMinSize) + " px minimum");
  if (r.storage_dtype != torch::kHalf && r.storage_dtype != torch::kBFloat16 &&
      r.storage_dtype != torch::kFloat32)
    throw Error("extract: storage dtype must be fp16, bf16 or fp32");
}

void ensure_store_writable(const std::string& store_dir) {
  std::error_code ec;
  fs::create_directories(store_dir, ec);
  if (ec || !fs::is_directory(store_dir, ec))
    fail_file(store_dir, "cannot create the feature store folder: " +
                             (ec ? ec.message() : std::string("not a directory")));
  const std::string probe = (fs::path(store_dir) / ".vidfuse-write-test").string();
  try {
    write_text_atomically(probe, "ok\n");
  } catch (const std::exception& e) {
    throw Error(std::string("the feature store is not writable: ") + e.what());
  }
  fs::remove(probe, ec);
}

struct ExtractPlan {
  std::vector<const VideoEntry*> todo;  // this shard's videos not verified complete
  // Videos whose store file cannot be made (an id that is no file name, a path the file system
  // refuses): each becomes a recorded failure, and the run goes on.
  std::vector<std::pair<const VideoEntry*, std::string>> refused;
  int64_t shard_videos = 0, skipped = 0;
};

ExtractPlan plan_extraction(const Manifest& manifest, const ExtractRun& run,
                            const std::vector<Stream>& streams, std::ostream& log) {
  const std::vector<std::string> required = required_tensors(stream_names(streams));
  ExtractPlan plan;
  for (const auto& v : manifest.videos) {
    if (!in_shard(v.id, run.shard_index, run.shard_count)) continue;
    ++plan.shard_videos;
    std::string path;
    try {
      // Every name this video's outputs take, checked before any work on it.
      path = store_file_path(run.store_dir, v.id);
    } catch (const Error& e) {
      plan.refused.emplace_back(&v, e.what());
      continue;
    }
    // Without following links, and without throwing: one odd path is this video's problem only.
    std::error_code ec;
    const fs::file_status st = fs::symlink_status(path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) {
      plan.refused.emplace_back(&v, path + ": cannot look at the store file: " + ec.message());
      continue;
    }
    if (fs::is_symlink(st)) {
      // Never a file of ours: the write replaces the link (rename does not follow it).
      log << "extract: redoing " << v.id << ": " << path << " is a symbolic link\n";
    } else if (fs::exists(st)) {
      const StoreFileInfo info = inspect_store_file(path, required);
      if (info.ok) {
        ++plan.skipped;
        continue;
      }
      log << "extract: redoing " << v.id << ": " << info.error << "\n";
    }
    plan.todo.push_back(&v);
  }
  return plan;
}

// Metadata shared by every file of this run: which models, weights, sampling and transforms.
weights::Metadata run_metadata(const ExtractModels& m, const ExtractRecipe& r,
                               const std::vector<Stream>& streams) {
  weights::Metadata meta;
  meta["vidfuse.version"] = kVidfuseVersion;
  meta["streams"] = join(stream_names(streams), ",");
  meta["storage_dtype"] = r.storage_dtype == torch::kHalf       ? "fp16"
                          : r.storage_dtype == torch::kBFloat16 ? "bf16"
                                                                : "fp32";
  auto key = [](Stream s, const char* field) { return stream_metadata_key(s, field); };
  if (r.semantic()) {
    meta[key(Stream::Semantic, "model")] = describe_dinov3(m.dinov3);
    meta[key(Stream::Semantic, "weights")] = r.dinov3;
    meta[key(Stream::Semantic, "weights_hash")] = weights_fingerprint(*m.dinov3);
    meta[key(Stream::Semantic, "sampling")] = io::describe(r.semantic_sampling);
    meta[key(Stream::Semantic, "transform")] =
        "dinov3 " + std::to_string(r.semantic_size) + "x" + std::to_string(r.semantic_size) +
        " (x/255, antialiased bilinear squash resize, ImageNet mean/std)";
    meta[key(Stream::Semantic, "pool")] = std::to_string(r.pool);
    meta[key(Stream::Semantic, "config")] = m.dinov3->config().to_json().dump();
  }
  const std::string motion_transform = "i3d short side " + std::to_string(r.motion_short_side) +
                                       ", centre crop " + std::to_string(r.motion_crop) +
                                       ", [-1, 1]";
  const std::string motion_sampling =
      io::describe(r.motion_sampling) +
      (r.motion_clip > 0 ? ", centred clip of " + std::to_string(r.motion_clip) + " frames"
                         : std::string(", all frames"));
  if (r.motion()) {
    meta[key(Stream::Motion, "model")] = "i3d inception-v1 rgb";
    meta[key(Stream::Motion, "weights")] = r.i3d;
    meta[key(Stream::Motion, "weights_hash")] = weights_fingerprint(*m.i3d);
    meta[key(Stream::Motion, "sampling")] = motion_sampling;
    meta[key(Stream::Motion, "transform")] = motion_transform;
  }
  if (r.flow_stream()) {
    meta[key(Stream::Flow, "model")] = "i3d inception-v1 flow";
    meta[key(Stream::Flow, "weights")] = r.flow_i3d;
    meta[key(Stream::Flow, "weights_hash")] = weights_fingerprint(*m.flow);
    meta[key(Stream::Flow, "sampling")] = motion_sampling;
    meta[key(Stream::Flow, "transform")] =
        motion_transform + ", then " + (r.flow.method == io::FlowMethod::kTVL1 ? "TV-L1" : "DIS") +
        " flow clipped to +-" + std::to_string(r.flow.bound) + " px, scaled to [-1, 1]";
  }
  return meta;
}

// ---- The loader's item: one video decoded for every stream --------------------------------------

struct DecodedVideo {
  StreamInputs inputs;             // semantic frames, motion clip, their times, warnings
  torch::Tensor flow;              // [2, Tm-1, crop, crop] I3D flow input (flow stream only)
  std::vector<double> flow_times;  // a flow field sits between two frames: one fewer
};

// Runs on a loader thread: decodes the union of the streams' frames once, then transforms them.
DecodedVideo decode_video(const std::string& path, const ExtractRecipe& r) {
  DecodedVideo d;
  d.inputs = load_stream_inputs(path, r, r.semantic(), r.motion() || r.flow_stream());
  if (r.flow_stream()) {
    try {
      // Flow on the cropped frames the RGB stream sees (uint8 again: OpenCV's input).
      const torch::Tensor u8 =
          ((d.inputs.motion + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8);
      d.flow = io::compute_optical_flow(u8.permute({1, 2, 3, 0}).contiguous(), r.flow);
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
    d.flow_times.assign(d.inputs.motion_times.begin(), d.inputs.motion_times.end() - 1);
  }
  return d;
}

// A video between the loader and the writer: its input and the tensors computed so far.
struct Pending {
  const VideoEntry* video = nullptr;
  DecodedVideo decoded;
  weights::TensorMap out;
};

// ---- One step per stream: a batch of decoded videos in, each video's tensors out ---------------

using StreamStep = std::function<void(const std::vector<Pending*>& batch)>;

// DINOv3 on every semantic frame of the batch, in chunks of `batch_frames`; on a GPU chunk k+1 is
// copied while chunk k runs.
StreamStep semantic_step(models::DinoV3ViT model, const ExtractRecipe& r, int64_t batch_frames) {
  auto stager = std::make_shared<DeviceStager>(device_of(*model));
  const torch::ScalarType dtype = model->parameters().front().scalar_type();
  return [model, stager, dtype, batch_frames, pool = r.pool,
          layers = r.semantic_layers](const std::vector<Pending*>& batch) mutable {
    std::vector<torch::Tensor> frames;
    for (auto* p : batch) frames.push_back(p->decoded.inputs.semantic);
    auto sizes = frames.front().sizes().vec();
    sizes[0] = 0;
    for (const auto& f : frames) sizes[0] += f.size(0);
    torch::Tensor all = stager->host_buffer(sizes, frames.front().scalar_type());
    torch::cat_out(all, frames);
    std::vector<DeviceStager::Upload> chunks;  // every upload queued before the first forward
    for (int64_t s = 0; s < all.size(0); s += batch_frames)
      chunks.push_back(stager->upload(all.slice(0, s, s + batch_frames), dtype));
    std::map<std::string, std::vector<torch::Tensor>> parts;
    for (const auto& chunk : chunks)
      for (auto& [name, t] : semantic_forward(model, stager->ready(chunk), pool, layers))
        parts[name].push_back(t);
    for (auto& [name, ts] : parts) {
      const torch::Tensor t = torch::cat(ts);
      int64_t at = 0;
      for (auto* p : batch) {
        const int64_t n = p->decoded.inputs.semantic.size(0);
        p->out[name] = t.slice(0, at, at + n);
        at += n;
      }
    }
    for (auto* p : batch)
      p->out[times_tensor(Stream::Semantic)] =
          torch::tensor(p->decoded.inputs.semantic_times, torch::kFloat64);
  };
}

// I3D (RGB or flow) on the batch's clips, `clips_per_forward` at a time.
StreamStep i3d_step(Stream stream, models::InceptionI3d model, int64_t clips_per_forward) {
  auto stager = std::make_shared<DeviceStager>(device_of(*model));
  const bool flow = stream == Stream::Flow;
  auto input = [flow](const Pending& p) { return flow ? p.decoded.flow : p.decoded.inputs.motion; };
  auto times = [flow](const Pending& p) {
    return flow ? p.decoded.flow_times : p.decoded.inputs.motion_times;
  };
  return [=](const std::vector<Pending*>& batch) mutable {
    const size_t step = static_cast<size_t>(clips_per_forward);
    std::vector<DeviceStager::Upload> uploads;
    for (size_t first = 0; first < batch.size(); first += step) {
      std::vector<torch::Tensor> clips;
      for (size_t k = first; k < std::min(batch.size(), first + step); ++k)
        clips.push_back(input(*batch[k]));
      uploads.push_back(stager->upload(torch::stack(clips), motion_input_dtype(model)));
    }
    for (size_t first = 0, u = 0; first < batch.size(); first += step, ++u) {
      auto [m5c, feat] = motion_forward(model, stager->ready(uploads[u]));
      for (size_t k = first; k < std::min(batch.size(), first + step); ++k) {
        batch[k]->out[mixed_5c_tensor(stream)] = m5c[k - first];
        batch[k]->out[features_tensor(stream)] = feat[k - first];
        batch[k]->out[times_tensor(stream)] = torch::tensor(times(*batch[k]), torch::kFloat64);
      }
    }
  };
}

std::vector<StreamStep> stream_steps(const ExtractModels& m, const ExtractRecipe& r,
                                     const ExtractRun& run) {
  std::vector<StreamStep> steps;
  if (r.semantic()) steps.push_back(semantic_step(m.dinov3, r, run.semantic_batch));
  if (r.motion()) steps.push_back(i3d_step(Stream::Motion, m.i3d, run.motion_batch));
  if (r.flow_stream()) steps.push_back(i3d_step(Stream::Flow, m.flow, run.motion_batch));
  return steps;
}

// Runs every stream's step on the group as one batch. A model error there is retried video by
// video, so that one bad input fails alone. Returns each video's error ("" = its tensors are in
// `out`).
std::vector<std::string> run_steps(const std::vector<StreamStep>& steps,
                                   std::vector<Pending>& group) {
  auto run_all = [&](const std::vector<Pending*>& batch) {
    for (const auto& step : steps) step(batch);
  };
  std::vector<std::string> errors(group.size());
  std::vector<Pending*> all;
  for (auto& p : group) all.push_back(&p);
  try {
    run_all(all);
  } catch (const std::exception&) {
    for (size_t k = 0; k < group.size(); ++k) {
      group[k].out.clear();
      try {
        run_all({&group[k]});
      } catch (...) {
        errors[k] = group[k].video->path + ": model: " + io::current_exception_message();
      }
    }
  }
  return errors;
}

// Videos per group: enough semantic frames to fill one DINOv3 batch (at least one video).
int64_t videos_per_group(const ExtractRecipe& r, const ExtractRun& run) {
  int64_t n = std::max<int64_t>(1, run.motion_batch);
  if (!r.semantic()) return n;
  const int64_t per_video =
      std::max<int64_t>(1, r.semantic_sampling.kind == io::SamplingSpec::Kind::Segment
                               ? r.semantic_sampling.num_segments
                               : run.semantic_batch);
  return std::max(n, (run.semantic_batch + per_video - 1) / per_video);
}

// ---- Writing: store files are converted and written on a background thread ----------------------

struct WriteCounts {
  std::atomic<int64_t> videos{0}, frames{0};
};

void write_outputs(const ExtractRecipe& r, const ExtractRun& run, const std::string& id,
                   const weights::TensorMap& out, const weights::Metadata& meta) {
  torch::InferenceMode guard;
  weights::TensorMap tensors;
  for (const auto& [name, t] : out)
    tensors[name] = is_times_tensor(name) ? t : t.to(r.storage_dtype);
  write_store_file(run.store_dir, id, tensors, meta);
  if (!run.write_npy) return;
  for (const Stream s : {Stream::Motion, Stream::Flow}) {
    auto it = out.find(features_tensor(s));
    if (it == out.end()) continue;
    const std::string suffix = s == Stream::Motion ? "_rgb.npy" : "_flow.npy";
    write_npy(store_file_path(run.store_dir, id, suffix),
              it->second.to(torch::kFloat32).unsqueeze(0));
  }
}

}  // namespace

// ---- The run: plan, per-stream steps, then one loop over the decoded videos
// ----------------------

ExtractSummary extract_features(const Manifest& manifest, const ExtractModels& given,
                                const ExtractRecipe& recipe, const ExtractRun& run) {
  const auto t_start = Clock::now();
  std::ostream& log = run.log ? *run.log : std::cerr;
  check_extraction(given, recipe, run);
  ensure_store_writable(run.store_dir);
  // Temp files of killed runs (this host's dead processes) would stay forever: remove them.
  const std::vector<std::string> stale = remove_stale_temps(run.store_dir);
  if (!stale.empty() && run.progress != ProgressMode::Off)
    log << "extract: removed " << stale.size() << " temp file(s) left by killed runs\n";
  ExtractModels models = given;  // the holders share the modules: this only switches modes
  if (recipe.semantic()) models.dinov3->eval();
  if (recipe.motion()) models.i3d->eval();
  if (recipe.flow_stream()) models.flow->eval();

  const std::vector<Stream> streams = recipe_streams(recipe);
  const ExtractPlan plan = plan_extraction(manifest, run, streams, log);
  ExtractSummary sum;
  sum.manifest_videos = static_cast<int64_t>(manifest.videos.size());
  sum.shard_videos = plan.shard_videos;
  sum.skipped = plan.skipped;
  if (run.progress != ProgressMode::Off) {
    log << "extract: " << sum.shard_videos << " videos in shard " << run.shard_index << "/"
        << run.shard_count << ", " << sum.skipped << " already complete, " << plan.todo.size()
        << " to do; streams " << join(stream_names(streams), ",") << " → " << run.store_dir << "\n";
  }
  const weights::Metadata base_metadata = run_metadata(models, recipe, streams);
  const std::vector<StreamStep> steps = stream_steps(models, recipe, run);

  io::LoaderOptions lo;
  lo.workers = std::max(1, run.workers);
  lo.capacity = std::max(lo.workers, run.prefetch);
  lo.ordered = true;
  io::PrefetchLoader<DecodedVideo> loader(
      static_cast<int64_t>(plan.todo.size()),
      [&](int64_t i) { return decode_video(plan.todo[static_cast<size_t>(i)]->path, recipe); }, lo);
  ExtractProgress progress(log, run.progress, run.log_interval_s,
                           static_cast<int64_t>(plan.todo.size() + plan.refused.size()));
  auto record_failure = [&](const VideoEntry& v, const std::string& error) {
    ++sum.failed;
    if (run.progress != ProgressMode::Off)
      log << "extract: failed " << v.id << ": " << error << "\n";
    append_failure(run.store_dir, {v.id, v.path, error, ""});  // throws on an unwritable store
  };

  // A video counts as done once its file is written; `submitted` paces the loop meanwhile. Write
  // errors (disk full, permissions) are not the video's fault: they end the run.
  BackgroundWriter writer(/*capacity=*/4);
  WriteCounts written;
  int64_t submitted = 0, submitted_frames = 0;
  const int64_t group_size = videos_per_group(recipe, run);
  std::vector<Pending> group;
  auto flush_group = [&] {
    const auto t0 = Clock::now();
    const std::vector<std::string> errors = run_steps(steps, group);
    sum.model_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    for (size_t k = 0; k < group.size(); ++k) {
      Pending& p = group[k];
      if (!errors[k].empty()) {
        record_failure(*p.video, errors[k]);
        continue;
      }
      weights::Metadata meta = base_metadata;
      meta["source"] = p.video->path;
      if (!p.decoded.inputs.warnings.empty())
        meta["warnings"] = join(p.decoded.inputs.warnings, "\n");
      const int64_t frames = p.decoded.inputs.decoded_frames;
      writer.submit([&recipe, &run, &written, frames, id = p.video->id, out = std::move(p.out),
                     meta = std::move(meta)] {
        write_outputs(recipe, run, id, out, meta);
        ++written.videos;
        written.frames += frames;
      });
      ++submitted;
      submitted_frames += frames;
    }
    group.clear();
  };

  try {
    for (const auto& [video, error] : plan.refused) record_failure(*video, error);
    while (true) {
      if (run.stop_after >= 0 && submitted >= run.stop_after) {
        sum.stopped = true;
        sum.stop_reason = "stopped after " + std::to_string(submitted) + " videos (stop_after)";
        break;
      }
      std::optional<io::Loaded<DecodedVideo>> item = loader.next();
      if (item) {
        const VideoEntry& v = *plan.todo[static_cast<size_t>(item->index)];
        if (item->ok())
          group.push_back(Pending{&v, std::move(item->value), {}});
        else
          record_failure(v, item->error);
      }
      const int64_t queued = submitted + static_cast<int64_t>(group.size());
      const bool full = static_cast<int64_t>(group.size()) >= group_size ||
                        (run.stop_after >= 0 && queued >= run.stop_after);
      if ((!item || full) && !group.empty()) flush_group();
      progress.update(submitted, sum.failed, submitted_frames);
      if (!item) break;
    }
    writer.finish();
  } catch (const std::exception& e) {
    // Only writing to the store throws out of the loop (per-video errors are recorded): stop.
    sum.stopped = true;
    sum.write_error = true;
    sum.stop_reason =
        std::string(e.what()) + " — stopping; files already written are complete, rerun to resume";
    try {
      writer.finish();  // let the files already queued land (or stop) before they are counted
    } catch (const std::exception&) {
    }
  }
  sum.done = written.videos;
  sum.frames = written.frames;
  sum.not_attempted =
      static_cast<int64_t>(plan.todo.size() + plan.refused.size()) - sum.done - sum.failed;
  progress.update(sum.done, sum.failed, sum.frames, /*final=*/true);
  sum.loader_idle_fraction = loader.stats().idle_fraction();
  if (!sum.write_error) {
    try {
      write_store_index(run.store_dir);
    } catch (const std::exception& e) {
      log << "extract: warning: could not update index.json: " << e.what() << "\n";
    }
  }
  sum.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return sum;
}

}  // namespace vidfuse::data
