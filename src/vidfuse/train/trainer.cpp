#include "vidfuse/train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <future>
#include <sstream>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/data/batch_loader.h"
#include "vidfuse/train/report.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/weights/safetensors.h"
#include "vidfuse/weights/state_dict.h"

namespace vidfuse::train {
namespace fs = std::filesystem;

namespace {
constexpr const char* kCheckpointFormat = "vidfuse-train-checkpoint";
constexpr const char* kCheckpointVersion = "1";

// The config and state JSON of a checkpoint written by Trainer::save_checkpoint.
void read_checkpoint_metadata(const weights::SafetensorsFile& file, const std::string& path,
                              nlohmann::json& config, nlohmann::json& state) {
  const auto& md = file.metadata();
  auto meta = [&](const char* key) {
    auto it = md.find(key);
    if (it == md.end())
      fail_file(path,
                std::string("not a vidfuse training checkpoint (no \"") + key + "\" metadata)");
    return it->second;
  };
  if (meta("format") != kCheckpointFormat)
    fail_file(path, "not a vidfuse training checkpoint (format \"" + meta("format") + "\")");
  if (meta("version") != kCheckpointVersion)
    fail_file(path, "checkpoint version " + meta("version") + " is not supported (expected " +
                        kCheckpointVersion + ")");
  try {
    // Depth-bounded: a checkpoint's metadata is as untrusted as any file.
    config = parse_json_text(meta("config"), path + ": metadata 'config'");
    state = parse_json_text(meta("state"), path + ": metadata 'state'");
  } catch (const nlohmann::json::exception& e) {
    fail_file(path, std::string("corrupt checkpoint metadata: ") + e.what());
  }
}

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Uniform integer in [0, bound) without modulo bias, from the engine's exactly specified output.
uint64_t uniform_below(std::mt19937_64& rng, uint64_t bound) {
  const uint64_t limit =
      std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % bound;
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return x % bound;
}

void shuffle(std::vector<int64_t>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[uniform_below(rng, i)]);
}

double uniform01(std::mt19937_64& rng) { return double(rng() >> 11) * 0x1.0p-53; }

// Beta(a, a) from two gammas (Marsaglia-Tsang, so the draw is the same on every platform).
double gamma_draw(std::mt19937_64& rng, double a) {
  if (a < 1) return gamma_draw(rng, a + 1) * std::pow(uniform01(rng) + 1e-300, 1.0 / a);
  const double d = a - 1.0 / 3, c = 1 / std::sqrt(9 * d);
  for (;;) {
    double x, v;
    do {
      // Box-Muller normal.
      const double u1 = uniform01(rng) + 1e-300, u2 = uniform01(rng);
      x = std::sqrt(-2 * std::log(u1)) * std::cos(2 * M_PI * u2);
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = uniform01(rng);
    if (u < 1 - 0.0331 * x * x * x * x) return d * v;
    if (std::log(u + 1e-300) < 0.5 * x * x + d * (1 - v + std::log(v))) return d * v;
  }
}

torch::Tensor rng_state(const torch::Device& device) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get_state();
}

void set_rng_state(const torch::Device& device, const torch::Tensor& state) {
  auto gen = at::globalContext().defaultGenerator(device);
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(state);
}

torch::Tensor mix(const torch::Tensor& x, const torch::Tensor& perm, double lam) {
  if (!x.defined()) return x;
  return x * lam + x.index_select(0, perm) * (1 - lam);
}
}  // namespace

std::vector<int64_t> epoch_permutation(int64_t n, int64_t seed, int64_t epoch) {
  std::seed_seq seq{uint32_t(seed), uint32_t(uint64_t(seed) >> 32), uint32_t(epoch),
                    uint32_t(uint64_t(epoch) >> 32), 0x70657200u};
  std::mt19937_64 rng(seq);
  std::vector<int64_t> perm(n);
  for (int64_t i = 0; i < n; ++i) perm[i] = i;
  shuffle(perm, rng);
  return perm;
}

Trainer::Trainer(TrainConfig config, std::shared_ptr<const data::Dataset> train,
                 std::shared_ptr<const data::Dataset> val, std::shared_ptr<Distributed> dist)
    : config_(std::move(config)),
      train_(std::move(train)),
      val_(std::move(val)),
      dist_(dist ? std::move(dist) : std::make_shared<Distributed>()),
      device_(resolve_device(config_.device).device) {
  config_.device = device_.str();  // what the checkpoints record
  config_.validate();
  if (!train_) throw Error("trainer: no train set");
  const int64_t W = dist_->world_size(), B = config_.batch_size;
  if (B % W != 0)
    throw Error("train config: batch_size " + std::to_string(B) +
                " must be divisible by the number of processes (" + std::to_string(W) + ")");
  steps_per_epoch_ = train_->size() / B;
  if (steps_per_epoch_ == 0)
    throw Error("train set: " + std::to_string(train_->size()) +
                " samples, fewer than one batch (batch_size " + std::to_string(B) + ")");
  schedule_.total_steps =
      config_.max_steps > 0 ? config_.max_steps : config_.epochs * steps_per_epoch_;
  schedule_.warmup_steps = std::min(
      schedule_.total_steps, config_.warmup_steps >= 0
                                 ? config_.warmup_steps
                                 : int64_t(std::lround(config_.warmup_epochs * steps_per_epoch_)));
  schedule_.base_lr = config_.lr;
  schedule_.min_lr = config_.min_lr;

  // Every rank draws the same initial weights and the same dropout/mixup streams, so the state
  // rank 0 checkpoints is every rank's state.
  torch::manual_seed(static_cast<uint64_t>(config_.seed));
  model_ = models::FusionModel(config_.model);
  model_->to(device_);
  if (config_.precision == "bf16") model_->set_compute_dtype(torch::kBFloat16);
  {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> state;
    for (auto& p : model_->parameters()) state.push_back(p);
    for (auto& b : model_->buffers()) state.push_back(b);
    dist_->broadcast(state, 0);
  }
  std::seed_seq mix_seed{uint32_t(config_.seed), uint32_t(uint64_t(config_.seed) >> 32), 0x6d6978u};
  mixup_rng_.seed(mix_seed);
  groups_ = split_weight_decay(*model_);
  params_ = groups_.decay;
  params_.insert(params_.end(), groups_.no_decay.begin(), groups_.no_decay.end());
  optimizer_ = make_adamw(groups_, config_);

  check_fits(*train_, "train set");
  if (val_ && val_->size() > 0) check_fits(*val_, "validation set");

  if (!config_.output_dir.empty() && dist_->is_main()) {
    std::error_code ec;
    fs::create_directories(config_.output_dir, ec);
    if (ec) fail_file(config_.output_dir, "cannot create the output directory: " + ec.message());
  }
  std::string resume_from = config_.resume;
  if (resume_from == "auto") {
    resume_from = output_path("checkpoint-last.safetensors");
    if (!fs::exists(resume_from)) resume_from.clear();
  }
  if (!resume_from.empty()) {
    resume(resume_from);  // restores the input statistics with the weights
    return;
  }
  // Every rank reads the same samples, so the statistics agree without a broadcast. From videos
  // every sample costs a decode and two backbone passes, so fewer of them.
  if (config_.model.standardize_inputs)
    fit_input_statistics(*model_, *train_, config_.data.source == "videos" ? 32 : 256);
  if (!config_.output_dir.empty() && dist_->is_main())
    write_text_atomically(output_path("log.jsonl"), "");
}

Trainer::~Trainer() = default;

std::string Trainer::output_path(const std::string& name) const {
  return (fs::path(config_.output_dir) / name).string();
}

void Trainer::check_fits(const data::Dataset& data, const std::string& name) {
  try {
    data::Batch b = data::load_batch(data, {0});
    model_->check_input(b.input);
    check_labels(b.labels, config_.model.num_classes, "sample 0");
  } catch (const Error& e) {
    throw Error(name + ": " + e.what());
  }
}

std::vector<int64_t> Trainer::batch_indices(int64_t step) {
  const int64_t epoch = step / steps_per_epoch_, pos = step % steps_per_epoch_;
  if (perm_epoch_ != epoch) {
    perm_ = epoch_permutation(train_->size(), config_.seed, epoch);
    perm_epoch_ = epoch;
  }
  const int64_t local = config_.batch_size / dist_->world_size();
  const int64_t begin = pos * config_.batch_size + dist_->rank() * local;
  return std::vector<int64_t>(perm_.begin() + begin, perm_.begin() + begin + local);
}

void Trainer::train_step(const data::Batch& batch) {
  const int64_t K = config_.model.num_classes;
  check_labels(batch.labels, K, "train set");
  model_->train();
  // Stored fp16/bf16 features are cast on the device (CPU: the same float32 values as before).
  auto input = data::to_device(batch.input, device_);
  auto labels = batch.labels.to(device_, /*non_blocking=*/batch.labels.is_pinned());
  const double eps = config_.label_smoothing;
  auto targets = torch::nn::functional::one_hot(labels, K).to(torch::kFloat) * (1 - eps) + eps / K;
  if (config_.mixup_alpha > 0 && uniform01(mixup_rng_) < config_.mixup_prob) {
    const double g1 = gamma_draw(mixup_rng_, config_.mixup_alpha);
    const double g2 = gamma_draw(mixup_rng_, config_.mixup_alpha);
    const double lam = g1 / (g1 + g2);
    std::vector<int64_t> order(labels.size(0));
    for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(i);
    shuffle(order, mixup_rng_);
    auto perm = torch::tensor(order, torch::kLong).to(device_);
    input.semantic = mix(input.semantic, perm, lam);
    input.semantic_cls = mix(input.semantic_cls, perm, lam);
    input.motion = mix(input.motion, perm, lam);
    targets = mix(targets, perm, lam);
  }
  auto logits = model_->forward(input);
  auto loss = -(targets.to(logits.scalar_type()) * torch::log_softmax(logits, 1)).sum(1).mean();
  optimizer_->zero_grad();
  loss.backward();
  dist_->average_gradients(params_);
  double norm = 0;
  if (config_.grad_clip > 0) {
    norm = torch::nn::utils::clip_grad_norm_(params_, config_.grad_clip);
  } else {
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> norms;
    for (const auto& p : params_)
      if (p.grad().defined()) norms.push_back(p.grad().norm());
    norm = norms.empty() ? 0.0 : torch::stack(norms).norm().item<double>();
  }
  // A non-finite loss (or gradient: on several processes the averaged gradient carries any rank's
  // NaN to all of them, so every rank stops here together) would train the weights into NaN and
  // still end in a "finished" run: stop before the step, naming the step and the batch.
  const double loss_value = loss.item<double>();
  if (!std::isfinite(loss_value) || !std::isfinite(norm)) {
    std::string names;
    const size_t shown = std::min<size_t>(batch.indices.size(), 8);
    for (size_t i = 0; i < shown; ++i) {
      if (i) names += ", ";
      names += train_->sample_name(batch.indices[i]);
    }
    if (batch.indices.size() > shown)
      names += " and " + std::to_string(batch.indices.size() - shown) + " more";
    throw Error("train: the loss turned non-finite at step " + std::to_string(step_ + 1) +
                " (loss " + std::to_string(loss_value) + ", gradient norm " + std::to_string(norm) +
                "); the batch: " + (names.empty() ? "?" : names) +
                ". Check these files for NaN/inf features, or lower lr; no step was taken");
  }
  optimizer_->step();
  running_.loss += loss_value;
  running_.acc += logits.argmax(1).eq(labels).to(torch::kDouble).mean().item<double>();
  running_.grad_norm += norm;
  running_.steps += 1;
  running_.samples += config_.batch_size;
}

void Trainer::record(nlohmann::json entry) {
  if (dist_->is_main() && !config_.output_dir.empty()) {
    // Appended and flushed line by line (JSON lines); a torn last line from a killed run is
    // dropped when the run resumes.
    std::ofstream out(output_path("log.jsonl"), std::ios::app);
    out << entry.dump() << '\n';
    out.flush();
    if (!out) fail_file(output_path("log.jsonl"), "cannot append to the log");
  }
  if (log_callback_) log_callback_(entry);
  log_.push_back(std::move(entry));
}

Metrics Trainer::validate() {
  if (!val_ || val_->size() == 0) throw Error("trainer: no validation set");
  EvalOptions o;
  o.batch_size = config_.eval_batch_size;
  o.device = device_;
  o.dist = dist_.get();
  return evaluate(model_, *val_, o);
}

void Trainer::after_validation(const Metrics& m) {
  last_val_ = m;
  const bool best = m.top1 > best_top1_;
  if (best) {
    best_top1_ = m.top1;
    best_step_ = step_;
  }
  record({{"type", "val"},
          {"step", step_},
          {"epoch", double(step_) / steps_per_epoch_},
          {"loss", m.loss},
          {"top1", m.top1},
          {"top5", m.top5},
          {"mean_class_accuracy", m.mean_class_accuracy},
          {"count", m.count},
          {"best", best}});
  if (best && !config_.output_dir.empty())
    save_checkpoint(output_path("checkpoint-best.safetensors"));
  write_outputs(m);
}

void Trainer::write_outputs(const Metrics& m) {
  if (!dist_->is_main() || config_.output_dir.empty()) return;
  const auto names = val_ ? val_->class_names() : std::vector<std::string>{};
  nlohmann::json j = {{"step", step_}, {"metrics", to_json(m, names)}};
  write_text_atomically(output_path("metrics.json"), j.dump(2) + "\n");
  ReportInputs r;
  r.log = log_;
  r.metrics = m;
  r.class_names = names;
  r.config = to_json(config_);
  write_html_report(output_path("report.html"), r);
}

TrainSummary Trainer::fit(int64_t stop_at_step) {
  const int64_t total = schedule_.total_steps;
  const int64_t stop = stop_at_step < 0 ? total : std::min(stop_at_step, total);
  const bool has_val = val_ && val_->size() > 0;
  last_log_time_ = now_seconds();
  // Readers load the next batches in parallel while the current one trains (bounded prefetch);
  // on CUDA they collate into pinned memory so the copies to the device do not block.
  data::BatchLoaderOptions lo;
  lo.readers = static_cast<int>(config_.data.readers);
  lo.prefetch = static_cast<int>(config_.data.prefetch);
  lo.pin_memory = device_.is_cuda();
  data::BatchLoader loader(train_, lo);
  int64_t scheduled = step_;
  auto fill = [&] {
    while (scheduled < stop && !loader.full()) loader.schedule(batch_indices(scheduled++));
  };
  fill();
  while (step_ < stop) {
    double waited = 0;
    data::Batch batch = loader.next(&waited);
    running_.data_wait_s += waited;
    fill();
    const double lr = schedule_.lr(step_);
    set_learning_rate(*optimizer_, lr);
    train_step(batch);
    ++step_;
    const bool end_of_epoch = step_ % steps_per_epoch_ == 0, last = step_ == total;
    if (step_ % config_.log_every == 0 || last) {
      std::vector<torch::Tensor> sums{
          torch::tensor({running_.loss, running_.acc, running_.grad_norm, double(running_.steps)},
                        torch::kDouble)};
      dist_->all_reduce_sum(sums);  // ranks saw different samples: report the global mean
      auto s = sums[0];
      const double n = s[3].item<double>();
      const double t = now_seconds();
      summary_.train_loss = s[0].item<double>() / n;
      summary_.train_acc = s[1].item<double>() / n;
      record({{"type", "train"},
              {"step", step_},
              {"epoch", double(step_) / steps_per_epoch_},
              {"lr", lr},
              {"loss", summary_.train_loss},
              {"acc", summary_.train_acc},
              {"grad_norm", s[2].item<double>() / n},
              {"samples_per_s", running_.samples / std::max(1e-9, t - last_log_time_)},
              // Share of the window the steps waited for data (the loader's idle share).
              {"data_wait", running_.data_wait_s / std::max(1e-9, t - last_log_time_)}});
      running_ = Running{};
      last_log_time_ = t;
    }
    if (has_val &&
        ((config_.eval_every > 0 ? step_ % config_.eval_every == 0 : end_of_epoch) || last))
      after_validation(validate());
    if (!config_.output_dir.empty() &&
        ((config_.checkpoint_every > 0 ? step_ % config_.checkpoint_every == 0 : end_of_epoch) ||
         last || step_ == stop))
      save_checkpoint(output_path("checkpoint-last.safetensors"));
  }
  summary_.steps = step_;
  summary_.val = last_val_;
  summary_.best_val_top1 = best_top1_;
  summary_.best_step = best_step_;
  return summary_;
}

void Trainer::save_checkpoint(const std::string& path) {
  if (!dist_->is_main()) return;
  weights::TensorMap tensors;
  for (const auto& [name, t] : weights::state_dict_of(*model_))
    tensors["model." + name] = t.detach();
  for (auto& [name, t] : adamw_state(*optimizer_, groups_)) tensors[name] = t;
  tensors["rng.cpu"] = rng_state(torch::kCPU);
  if (!device_.is_cpu()) tensors["rng.device"] = rng_state(device_);
  std::ostringstream mixup;
  mixup << mixup_rng_;
  nlohmann::json state = {{"step", step_},
                          {"steps_per_epoch", steps_per_epoch_},
                          {"total_steps", schedule_.total_steps},
                          {"batch_size", config_.batch_size},
                          {"train_size", train_->size()},
                          {"world_size", dist_->world_size()},
                          {"best_top1", best_top1_},
                          {"best_step", best_step_},
                          {"mixup_rng", mixup.str()},
                          {"running",
                           {{"loss", running_.loss},
                            {"acc", running_.acc},
                            {"grad_norm", running_.grad_norm},
                            {"steps", running_.steps},
                            {"samples", running_.samples}}}};
  weights::save_safetensors(path, tensors,
                            {{"format", kCheckpointFormat},
                             {"version", kCheckpointVersion},
                             {"config", to_json(config_).dump()},
                             {"class_names", nlohmann::json(train_->class_names()).dump()},
                             {"state", state.dump()}});
}

void Trainer::resume(const std::string& path) {
  weights::SafetensorsFile file(path);
  nlohmann::json saved_config, state;
  read_checkpoint_metadata(file, path, saved_config, state);
  const auto mine = models::to_json(config_.model);
  if (saved_config.value("model", nlohmann::json()) != mine) {
    std::string diffs;
    for (auto it = mine.begin(); it != mine.end(); ++it) {
      const auto other = saved_config["model"].value(it.key(), nlohmann::json());
      if (other != it.value())
        diffs += (diffs.empty() ? "" : ", ") + it.key() + " " + other.dump() + " vs " +
                 it.value().dump();
    }
    fail_file(path, "the checkpoint's model config differs from this run's (checkpoint vs run: " +
                        diffs + ")");
  }
  try {
    for (const char* key : {"batch_size", "train_size", "steps_per_epoch"}) {
      const int64_t saved = state.at(key).get<int64_t>();
      const int64_t now = std::string(key) == "batch_size"   ? config_.batch_size
                          : std::string(key) == "train_size" ? train_->size()
                                                             : steps_per_epoch_;
      if (saved != now)
        fail_file(path, std::string("the checkpoint was written with ") + key + " " +
                            std::to_string(saved) + ", this run has " + std::to_string(now) +
                            " (the data position would not carry over)");
    }
    step_ = state.at("step").get<int64_t>();
    best_top1_ = state.at("best_top1").get<double>();
    best_step_ = state.at("best_step").get<int64_t>();
    std::istringstream mixup(state.at("mixup_rng").get<std::string>());
    mixup >> mixup_rng_;
    const auto& r = state.at("running");
    running_.loss = r.at("loss").get<double>();
    running_.acc = r.at("acc").get<double>();
    running_.grad_norm = r.at("grad_norm").get<double>();
    running_.steps = r.at("steps").get<int64_t>();
    running_.samples = r.at("samples").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail_file(path, std::string("corrupt checkpoint state: ") + e.what());
  }

  weights::TensorMap model_state, optimizer_state;
  for (const auto& key : file.keys()) {
    if (key.rfind("model.", 0) == 0) model_state[key.substr(6)] = file.get(key);
    if (key.rfind("optimizer.", 0) == 0) optimizer_state[key] = file.get(key);
  }
  weights::LoadOptions lo;
  lo.strict = true;
  lo.source = path;
  weights::load_state_dict(*model_, model_state, lo);
  load_adamw_state(*optimizer_, groups_, optimizer_state, path);
  if (!file.contains("rng.cpu")) fail_file(path, "the checkpoint has no RNG state (rng.cpu)");
  set_rng_state(torch::kCPU, file.get("rng.cpu"));
  if (!device_.is_cpu() && file.contains("rng.device"))
    set_rng_state(device_, file.get("rng.device"));
  perm_epoch_ = -1;

  // Keep the log up to the checkpoint: records written after it belong to the abandoned run.
  log_.clear();
  const std::string log_path = output_path("log.jsonl");
  if (!config_.output_dir.empty() && fs::exists(log_path)) {
    std::ifstream in(log_path);
    std::string line, kept;
    while (std::getline(in, line)) {
      try {
        auto j = nlohmann::json::parse(line);
        if (j.value("step", int64_t(0)) > step_) continue;
        kept += line + "\n";
        log_.push_back(std::move(j));
      } catch (const nlohmann::json::exception&) {
        // a torn line from a killed run
      }
    }
    if (dist_->is_main()) write_text_atomically(log_path, kept);
  }
}

TrainedModel load_trained_model(const std::string& path) {
  weights::SafetensorsFile file(path);
  nlohmann::json config_json, state;
  read_checkpoint_metadata(file, path, config_json, state);
  TrainedModel out;
  try {
    out.config = train_config_from_json(config_json, path + ": saved config");
    out.step = state.at("step").get<int64_t>();
  } catch (const nlohmann::json::exception& e) {
    fail_file(path, std::string("corrupt checkpoint state: ") + e.what());
  }
  const auto names = file.metadata().find("class_names");
  if (names != file.metadata().end()) {
    try {
      out.class_names = parse_json_text(names->second, path + ": metadata 'class_names'")
                            .get<std::vector<std::string>>();
    } catch (const nlohmann::json::exception& e) {
      fail_file(path, std::string("corrupt class_names metadata: ") + e.what());
    }
  }
  out.model = models::FusionModel(out.config.model);
  weights::TensorMap model_state;
  for (const auto& key : file.keys())
    if (key.rfind("model.", 0) == 0) model_state[key.substr(6)] = file.get(key);
  weights::LoadOptions lo;
  lo.strict = true;
  lo.source = path;
  weights::load_state_dict(*out.model, model_state, lo);
  out.model->eval();
  return out;
}

}  // namespace vidfuse::train
