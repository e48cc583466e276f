#include "vidfuse/data/extractor.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
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
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/store_schema.h"
#include "vidfuse/data/stream_inputs.h"
#include "vidfuse/io/prefetch_loader.h"

namespace vidfuse::data {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

io::SamplingSpec ExtractOptions::default_semantic_sampling() {
  io::SamplingSpec s;
  s.kind = io::SamplingSpec::Kind::Segment;
  s.num_segments = 16;
  return s;
}

io::SamplingSpec ExtractOptions::default_motion_sampling() {
  io::SamplingSpec s;
  s.kind = io::SamplingSpec::Kind::FixedRate;
  s.fps = 25.0;
  return s;
}

io::DecodeOptions ExtractOptions::default_decode() {
  io::DecodeOptions d;
  d.threads = 1;  // parallelism comes from the loader's workers (one video each)
  return d;
}

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

std::string format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = static_cast<int64_t>(s);
  char buf[32];
  if (t >= 3600)
    std::snprintf(buf, sizeof(buf), "%lldh%02lldm", static_cast<long long>(t / 3600),
                  static_cast<long long>(t % 3600 / 60));
  else
    std::snprintf(buf, sizeof(buf), "%lldm%02llds", static_cast<long long>(t / 60),
                  static_cast<long long>(t % 60));
  return buf;
}

// A video decoded and transformed for every stream, waiting for the models.
struct Pending {
  const VideoEntry* video = nullptr;
  io::LoadedItem item;
  std::map<std::string, torch::Tensor> out;  // feature tensors as they are computed
};

class Progress {
 public:
  Progress(std::ostream& log, ProgressMode mode, double interval, int64_t total)
      : log_(log), interval_(interval), total_(total), start_(Clock::now()), last_(start_) {
    bar_ = mode == ProgressMode::Bar ||
           (mode == ProgressMode::Auto && &log == &std::cerr && ::isatty(STDERR_FILENO));
    off_ = mode == ProgressMode::Off;
  }
  void update(int64_t done, int64_t failed, int64_t frames, bool final = false) {
    if (off_) return;
    const auto now = Clock::now();
    const double since = std::chrono::duration<double>(now - last_).count();
    if (!final && since < (bar_ ? 0.2 : interval_)) return;
    last_ = now;
    const double el = std::chrono::duration<double>(now - start_).count();
    const int64_t n = done + failed;
    const double vps = el > 0 ? n / el : 0;
    const double eta = vps > 0 ? (total_ - n) / vps : NAN;
    char buf[256];
    if (bar_) {
      const int width = 30;
      const int filled = total_ > 0 ? static_cast<int>(width * n / total_) : width;
      std::string bar(filled, '#');
      bar.append(width - filled, '.');
      std::snprintf(buf, sizeof(buf),
                    "\r[%s] %lld/%lld videos (%lld failed)  %.2f videos/s  %.1f frames/s  ETA %s ",
                    bar.c_str(), static_cast<long long>(n), static_cast<long long>(total_),
                    static_cast<long long>(failed), vps, el > 0 ? frames / el : 0.0,
                    format_duration(eta).c_str());
      log_ << buf << (final ? "\n" : "") << std::flush;
    } else {
      std::snprintf(buf, sizeof(buf),
                    "extract: %lld/%lld videos (%lld failed), %.2f videos/s, %.1f frames/s, "
                    "elapsed %s, ETA %s",
                    static_cast<long long>(n), static_cast<long long>(total_),
                    static_cast<long long>(failed), vps, el > 0 ? frames / el : 0.0,
                    format_duration(el).c_str(), format_duration(eta).c_str());
      log_ << buf << "\n" << std::flush;
    }
  }

 private:
  std::ostream& log_;
  double interval_;
  int64_t total_;
  Clock::time_point start_, last_;
  bool bar_ = false, off_ = false;
};

}  // namespace

ExtractSummary extract_features(const Manifest& manifest, const ExtractModels& models_in,
                                const ExtractOptions& opt) {
  const auto t_start = Clock::now();
  std::ostream& log = opt.log ? *opt.log : std::cerr;
  ExtractModels models = models_in;
  const bool sem = !models.dinov3.is_empty();
  const bool mot = !models.i3d.is_empty();
  const bool flo = !models.flow.is_empty();
  if (!sem && !mot && !flo) throw Error("extract: no model given (semantic, motion or flow)");
  if (opt.store_dir.empty()) throw Error("extract: no output store folder");
  if (opt.shard_count < 1 || opt.shard_index < 0 || opt.shard_index >= opt.shard_count)
    throw Error("extract: shard " + std::to_string(opt.shard_index) + "/" +
                std::to_string(opt.shard_count) + " is invalid");
  if (opt.pool < 1) throw Error("extract: pool must be >= 1");
  if (opt.semantic_batch < 1 || opt.motion_batch < 1)
    throw Error("extract: batch sizes must be >= 1");
  if (mot && models.i3d->config().in_channels != 3)
    throw Error("extract: the motion model takes " +
                std::to_string(models.i3d->config().in_channels) + " channels, RGB needs 3");
  if (flo && models.flow->config().in_channels != 2)
    throw Error("extract: the flow model takes " +
                std::to_string(models.flow->config().in_channels) + " channels, flow needs 2");
  if ((mot || flo) && opt.motion_crop < models::kI3DMinSize)
    throw Error("extract: motion crop " + std::to_string(opt.motion_crop) + " is below I3D's " +
                std::to_string(models::kI3DMinSize) + " px minimum");
  if (opt.storage_dtype != torch::kHalf && opt.storage_dtype != torch::kBFloat16 &&
      opt.storage_dtype != torch::kFloat32)
    throw Error("extract: storage dtype must be fp16, bf16 or fp32");

  // The store must be writable before any work is done: fail now, not after an hour of decoding.
  {
    std::error_code ec;
    fs::create_directories(opt.store_dir, ec);
    if (ec || !fs::is_directory(opt.store_dir))
      fail_file(opt.store_dir, "cannot create the feature store folder: " +
                                   (ec ? ec.message() : std::string("not a directory")));
    const std::string probe = (fs::path(opt.store_dir) / ".vidfuse-write-test").string();
    try {
      write_text_atomically(probe, "ok\n");
    } catch (const std::exception& e) {
      throw Error(std::string("the feature store is not writable: ") + e.what());
    }
    fs::remove(probe, ec);
  }

  std::vector<std::string> streams;
  if (sem) streams.push_back(stream_name(Stream::Semantic));
  if (mot) streams.push_back(stream_name(Stream::Motion));
  if (flo) streams.push_back(stream_name(Stream::Flow));
  const std::vector<std::string> required = required_tensors(streams);

  // What this run has to do: the shard's videos that are not verified complete.
  ExtractSummary sum;
  sum.manifest_videos = static_cast<int64_t>(manifest.videos.size());
  std::vector<const VideoEntry*> todo;
  for (const auto& v : manifest.videos) {
    if (!in_shard(v.id, opt.shard_index, opt.shard_count)) continue;
    ++sum.shard_videos;
    const std::string path = store_file_path(opt.store_dir, v.id);
    if (fs::exists(path)) {
      const StoreFileInfo info = inspect_store_file(path, required);
      if (info.ok) {
        ++sum.skipped;
        continue;
      }
      log << "extract: redoing " << v.id << ": " << info.error << "\n";
    }
    todo.push_back(&v);
  }
  if (opt.progress != ProgressMode::Off)
    log << "extract: " << sum.shard_videos << " videos in shard " << opt.shard_index << "/"
        << opt.shard_count << ", " << sum.skipped << " already complete, " << todo.size()
        << " to do; streams " << join(streams, ",") << " → " << opt.store_dir << "\n";

  // Metadata shared by every file of this run.
  weights::Metadata base;
  base["vidfuse.version"] = kVidfuseVersion;
  base["streams"] = join(streams, ",");
  base["storage_dtype"] = opt.storage_dtype == torch::kHalf       ? "fp16"
                          : opt.storage_dtype == torch::kBFloat16 ? "bf16"
                                                                  : "fp32";
  if (sem) {
    models.dinov3->eval();
    base["semantic.model"] = describe_dinov3(models.dinov3);
    base["semantic.weights"] = models.dinov3_name;
    base["semantic.weights_hash"] = weights_fingerprint(*models.dinov3);
    base["semantic.sampling"] = io::describe(opt.semantic_sampling);
    base["semantic.transform"] = "dinov3 " + std::to_string(opt.semantic_size) + "x" +
                                 std::to_string(opt.semantic_size) +
                                 " (x/255, antialiased bilinear squash resize, ImageNet mean/std)";
    base["semantic.pool"] = std::to_string(opt.pool);
    base["semantic.config"] = models.dinov3->config().to_json().dump();
  }
  const std::string motion_transform = "i3d short side " + std::to_string(opt.motion_short_side) +
                                       ", centre crop " + std::to_string(opt.motion_crop) +
                                       ", [-1, 1]";
  const std::string motion_sampling =
      io::describe(opt.motion_sampling) +
      (opt.motion_clip > 0 ? ", centred clip of " + std::to_string(opt.motion_clip) + " frames"
                           : std::string(", all frames"));
  if (mot) {
    models.i3d->eval();
    base["motion.model"] = "i3d inception-v1 rgb";
    base["motion.weights"] = models.i3d_name;
    base["motion.weights_hash"] = weights_fingerprint(*models.i3d);
    base["motion.sampling"] = motion_sampling;
    base["motion.transform"] = motion_transform;
  }
  if (flo) {
    models.flow->eval();
    base["flow.model"] = "i3d inception-v1 flow";
    base["flow.weights"] = models.flow_name;
    base["flow.weights_hash"] = weights_fingerprint(*models.flow);
    base["flow.sampling"] = motion_sampling;
    base["flow.transform"] = motion_transform + std::string(", then ") +
                             (opt.flow_options.method == io::FlowMethod::kTVL1 ? "TV-L1" : "DIS") +
                             " flow clipped to +-" + std::to_string(opt.flow_options.bound) +
                             " px, scaled to [-1, 1]";
  }

  // Worker task: decode the union of both streams' frames once, then transform per stream.
  auto task = [&todo, &opt, sem, mot, flo](int64_t i, io::LoadedItem& item) {
    const VideoEntry& v = *todo[static_cast<size_t>(i)];
    StreamInputs in = load_stream_inputs(v.path, opt, sem, mot || flo);
    item.warnings = std::move(in.warnings);
    item.tensors["decoded_frames"] = torch::tensor(in.decoded_frames);
    auto times = [](const std::vector<double>& t) { return torch::tensor(t, torch::kFloat64); };
    if (sem) {
      item.tensors["semantic"] = in.semantic;
      item.tensors[times_tensor(Stream::Semantic)] = times(in.semantic_times);
    }
    if (mot) {
      item.tensors["motion"] = in.motion;
      item.tensors[times_tensor(Stream::Motion)] = times(in.motion_times);
    }
    if (flo) {
      try {
        // Flow on the cropped frames the RGB stream sees (uint8 again: OpenCV's input).
        torch::Tensor u8 = ((in.motion + 1) * 127.5).round().clamp(0, 255).to(torch::kUInt8);
        item.tensors["flow"] =
            io::compute_optical_flow(u8.permute({1, 2, 3, 0}).contiguous(), opt.flow_options);
      } catch (const Error& e) {
        throw Error(v.path + ": " + e.what());
      }
      in.motion_times.pop_back();  // a flow field sits between two frames: one fewer
      item.tensors[times_tensor(Stream::Flow)] = times(in.motion_times);
    }
  };

  io::LoaderOptions lo;
  lo.workers = std::max(1, opt.workers);
  lo.capacity = std::max(lo.workers, opt.prefetch);
  lo.ordered = true;
  io::PrefetchLoader loader(static_cast<int64_t>(todo.size()), task, lo);
  Progress progress(log, opt.progress, opt.log_interval_s, static_cast<int64_t>(todo.size()));

  auto record_failure = [&](const VideoEntry& v, const std::string& error) {
    ++sum.failed;
    if (opt.progress != ProgressMode::Off)
      log << "extract: failed " << v.id << ": " << error << "\n";
    append_failure(opt.store_dir, {v.id, v.path, error, ""});  // throws on an unwritable store
  };

  // Store files are converted and written on this thread while the models run; a few groups'
  // outputs may wait.
  // A video counts as done once its file is written; `submitted` paces the loop meanwhile.
  BackgroundWriter writer(/*capacity=*/4);
  int64_t submitted = 0, submitted_frames = 0;
  std::atomic<int64_t> written{0}, written_frames{0};

  // Runs the models on a group of videos and queues their files for the writer. Semantic frames of
  // the whole group form one batch (split into semantic_batch chunks); a model error in a batch is
  // retried video by video so that one bad input fails alone.
  // Inputs reach the models' device through pinned memory and a side stream on a GPU.
  auto device_of = [](const torch::nn::Module& m) { return m.parameters().front().device(); };
  DeviceStager semantic_stager(sem ? device_of(*models.dinov3) : torch::Device(torch::kCPU));
  DeviceStager motion_stager(mot   ? device_of(*models.i3d)
                             : flo ? device_of(*models.flow)
                                   : torch::Device(torch::kCPU));
  const torch::ScalarType semantic_dtype =
      sem ? models.dinov3->parameters().front().scalar_type() : torch::kFloat32;

  auto run_models = [&](std::vector<Pending>& group) {
    const auto t0 = Clock::now();
    auto run_batch = [&](std::vector<Pending*> batch) {
      if (sem) {
        std::vector<torch::Tensor> frames;
        int64_t total = 0;
        for (auto* p : batch) {
          frames.push_back(p->item.tensors.at("semantic"));
          total += frames.back().size(0);
        }
        auto sizes = frames.front().sizes().vec();
        sizes[0] = total;
        torch::Tensor all = semantic_stager.host_buffer(sizes, frames.front().scalar_type());
        torch::cat_out(all, frames);
        // Every chunk's upload is queued first, so on a GPU chunk k+1 is copied while k runs.
        std::vector<DeviceStager::Upload> chunks;
        for (int64_t s = 0; s < all.size(0); s += opt.semantic_batch)
          chunks.push_back(
              semantic_stager.upload(all.slice(0, s, s + opt.semantic_batch), semantic_dtype));
        std::map<std::string, std::vector<torch::Tensor>> parts;
        for (const auto& chunk : chunks) {
          auto r = semantic_forward(models.dinov3, semantic_stager.ready(chunk), opt.pool,
                                    opt.semantic_layers);
          for (auto& [k, t] : r) parts[k].push_back(t);
        }
        for (auto& [k, ts] : parts) {
          const torch::Tensor t = torch::cat(ts);
          int64_t at = 0;
          for (auto* p : batch) {
            const int64_t n = p->item.tensors.at("semantic").size(0);
            p->out[k] = t.slice(0, at, at + n);
            at += n;
          }
        }
        const std::string& times = times_tensor(Stream::Semantic);
        for (auto* p : batch) p->out[times] = p->item.tensors.at(times);
      }
      for (const Stream s : {Stream::Motion, Stream::Flow}) {
        if ((s == Stream::Motion && !mot) || (s == Stream::Flow && !flo)) continue;
        auto& model = s == Stream::Motion ? models.i3d : models.flow;
        const std::string& stream = stream_name(s);
        std::vector<DeviceStager::Upload> uploads;
        for (size_t first = 0; first < batch.size(); first += opt.motion_batch) {
          std::vector<torch::Tensor> clips;
          const size_t e = std::min(batch.size(), first + opt.motion_batch);
          for (size_t k = first; k < e; ++k) clips.push_back(batch[k]->item.tensors.at(stream));
          uploads.push_back(motion_stager.upload(torch::stack(clips), motion_input_dtype(model)));
        }
        for (size_t first = 0, u = 0; first < batch.size(); first += opt.motion_batch, ++u) {
          const size_t e = std::min(batch.size(), first + opt.motion_batch);
          auto [m5c, feat] = motion_forward(model, motion_stager.ready(uploads[u]));
          for (size_t k = first; k < e; ++k) {
            batch[k]->out[mixed_5c_tensor(s)] = m5c[k - first];
            batch[k]->out[features_tensor(s)] = feat[k - first];
            batch[k]->out[times_tensor(s)] = batch[k]->item.tensors.at(times_tensor(s));
          }
        }
      }
    };
    std::vector<Pending*> all;
    for (auto& p : group) all.push_back(&p);
    std::vector<std::string> errors(group.size());
    try {
      run_batch(all);
    } catch (const std::exception&) {
      for (size_t k = 0; k < group.size(); ++k) {
        group[k].out.clear();
        try {
          run_batch({&group[k]});
        } catch (const c10::Error& e) {
          errors[k] = group[k].video->path + ": model: " + e.what_without_backtrace();
        } catch (const std::exception& e) {
          errors[k] = group[k].video->path + ": model: " + e.what();
        }
      }
    }
    sum.model_seconds += std::chrono::duration<double>(Clock::now() - t0).count();
    for (size_t k = 0; k < group.size(); ++k) {
      Pending& p = group[k];
      if (!errors[k].empty()) {
        record_failure(*p.video, errors[k]);
        continue;
      }
      weights::Metadata meta = base;
      meta["source"] = p.video->path;
      if (!p.item.warnings.empty()) meta["warnings"] = join(p.item.warnings, "\n");
      // Converted and written on the writer thread while the models run on the next group. Write
      // errors (disk full, permissions) are not the video's fault: they end the run.
      const int64_t frames = p.item.tensors.at("decoded_frames").item<int64_t>();
      writer.submit([&opt, &written, &written_frames, frames, id = p.video->id,
                     out = std::move(p.out), meta = std::move(meta)] {
        torch::InferenceMode guard;
        weights::TensorMap tensors;
        for (const auto& [name, t] : out)
          tensors[name] = is_times_tensor(name) ? t : t.to(opt.storage_dtype);
        write_store_file(opt.store_dir, id, tensors, meta);
        if (opt.write_npy) {
          for (const Stream s : {Stream::Motion, Stream::Flow}) {
            auto it = out.find(features_tensor(s));
            if (it == out.end()) continue;
            write_npy(
                (fs::path(opt.store_dir) / (id + (s == Stream::Motion ? "_rgb.npy" : "_flow.npy")))
                    .string(),
                it->second.to(torch::kFloat32).unsqueeze(0));
          }
        }
        ++written;
        written_frames += frames;
      });
      ++submitted;
      submitted_frames += frames;
    }
  };

  // Videos per group: enough semantic frames to fill one DINOv3 batch (at least one video).
  int64_t group_size = std::max<int64_t>(1, opt.motion_batch);
  if (sem) {
    int64_t per_video =
        std::max<int64_t>(1, opt.semantic_sampling.kind == io::SamplingSpec::Kind::Segment
                                 ? opt.semantic_sampling.num_segments
                                 : opt.semantic_batch);
    group_size = std::max(group_size, (opt.semantic_batch + per_video - 1) / per_video);
  }

  std::vector<Pending> group;
  int64_t taken = 0;
  try {
    while (true) {
      if (opt.stop_after >= 0 && submitted >= opt.stop_after) {
        sum.stopped = true;
        sum.stop_reason = "stopped after " + std::to_string(submitted) + " videos (stop_after)";
        break;
      }
      std::optional<io::LoadedItem> item = loader.next();
      if (item) {
        ++taken;
        const VideoEntry& v = *todo[static_cast<size_t>(item->index)];
        if (!item->ok()) {
          record_failure(v, item->error);
        } else {
          group.push_back(Pending{&v, std::move(*item), {}});
        }
      }
      const bool flush =
          !item || static_cast<int64_t>(group.size()) >= group_size ||
          (opt.stop_after >= 0 && submitted + static_cast<int64_t>(group.size()) >= opt.stop_after);
      if (flush && !group.empty()) {
        run_models(group);
        group.clear();
      }
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
  sum.done = written;
  sum.frames = written_frames;
  sum.not_attempted = static_cast<int64_t>(todo.size()) - sum.done - sum.failed;
  progress.update(sum.done, sum.failed, sum.frames, /*final=*/true);
  const io::LoaderStats ls = loader.stats();
  sum.loader_idle_fraction = ls.idle_fraction();
  (void)taken;
  if (!sum.write_error) {
    try {
      write_store_index(opt.store_dir);
    } catch (const std::exception& e) {
      log << "extract: warning: could not update index.json: " << e.what() << "\n";
    }
  }
  sum.seconds = std::chrono::duration<double>(Clock::now() - t_start).count();
  return sum;
}

}  // namespace vidfuse::data
