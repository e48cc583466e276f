// The training core: schedule, weight-decay groups, optimizer state, metrics, report, the trainer
// (memorisation, a task that needs both streams, resume equivalence, outputs) and config errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>

#include "test_train_synthetic.h"
#include "test_util.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/error.h"
#include "vidfuse/train/metrics.h"
#include "vidfuse/train/optimizer.h"
#include "vidfuse/train/report.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/train/trainer.h"
#include "vidfuse/weights/safetensors.h"

using namespace vidfuse;
using namespace vidfuse::train;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& name) {
  auto dir =
      fs::temp_directory_path() / ("vidfuse_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

TrainConfig tiny_train_config() {
  TrainConfig c;
  c.model = fusion_test::tiny_fusion_config();
  c.batch_size = 32;
  c.eval_batch_size = 64;
  c.lr = 3e-3;
  c.min_lr = 1e-5;
  c.weight_decay = 0.01;
  c.warmup_steps = 10;
  c.label_smoothing = 0;
  c.grad_clip = 1.0;
  c.log_every = 10;
  return c;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

void expect_same_parameters(models::FusionModel& a, models::FusionModel& b) {
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key() << " differs";
}

}  // namespace

TEST(TrainSchedule, WarmupThenCosineToMinimum) {
  CosineSchedule s{110, 10, 1.0, 0.1};
  EXPECT_DOUBLE_EQ(s.lr(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr(4), 0.5);
  EXPECT_DOUBLE_EQ(s.lr(9), 1.0);
  EXPECT_DOUBLE_EQ(s.lr(10), 1.0);
  EXPECT_NEAR(s.lr(60), 0.55, 1e-12);  // half way down the cosine
  EXPECT_NEAR(s.lr(109), 0.1 + 0.45 * (1 + std::cos(M_PI * 99 / 100)), 1e-12);
  for (int64_t i = 11; i < 110; ++i) EXPECT_LT(s.lr(i), s.lr(i - 1));
}

TEST(TrainOptimizer, WeightDecayExcludesNormsBiasesEmbeddingsQueries) {
  auto c = fusion_test::tiny_fusion_config();
  c.use_cls = true;
  auto model = models::FusionModel(c);
  auto groups = split_weight_decay(*model);
  std::set<std::string> decay(groups.decay_names.begin(), groups.decay_names.end());
  std::set<std::string> no_decay(groups.no_decay_names.begin(), groups.no_decay_names.end());
  for (const char* n :
       {"semantic_embed.proj.weight", "layers.0.sem_attn.q_proj.weight",
        "layers.0.mot_ffn.fc1.weight", "motion_pool.attn.o_proj.weight", "classifier.weight"})
    EXPECT_TRUE(decay.count(n)) << n;
  for (const char* n :
       {"semantic_embed.proj.bias", "semantic_embed.norm.weight", "semantic_embed.time_embed",
        "semantic_embed.row_embed", "semantic_embed.col_embed", "semantic_embed.type_embed",
        "semantic_embed.cls_embed", "layers.0.sem_norm.weight", "layers.0.sem_norm.bias",
        "semantic_pool.queries", "head_norm.weight", "classifier.bias"})
    EXPECT_TRUE(no_decay.count(n)) << n;
  EXPECT_EQ(decay.size() + no_decay.size(), model->parameters().size());

  // Group 1 really gets no decay: with zero gradients only decayed weights move.
  TrainConfig tc;
  tc.weight_decay = 0.5;
  tc.lr = 0.1;
  auto opt = make_adamw(groups, tc);
  std::vector<torch::Tensor> before_decay, before_no;
  for (auto& p : groups.decay) before_decay.push_back(p.detach().clone());
  for (auto& p : groups.no_decay) before_no.push_back(p.detach().clone());
  for (auto& p : model->parameters()) p.mutable_grad() = torch::zeros_like(p);
  opt->step();
  for (size_t i = 0; i < groups.decay.size(); ++i)
    EXPECT_TRUE(torch::allclose(groups.decay[i], before_decay[i] * (1 - 0.1 * 0.5)));
  for (size_t i = 0; i < groups.no_decay.size(); ++i)
    EXPECT_TRUE(torch::equal(groups.no_decay[i], before_no[i])) << groups.no_decay_names[i];
}

TEST(TrainOptimizer, AdamWStateRoundTripContinuesIdentically) {
  auto make = [] {
    torch::manual_seed(3);
    return models::FusionModel(fusion_test::tiny_fusion_config());
  };
  auto data = fusion_test::xor_dataset(8, 1);
  auto batch = data::load_batch(*data, {0, 1, 2, 3, 4, 5, 6, 7});
  TrainConfig tc;
  auto step = [&](models::FusionModel& m, torch::optim::AdamW& opt) {
    opt.zero_grad();
    torch::nn::functional::cross_entropy(m->forward(batch.input), batch.labels).backward();
    opt.step();
  };
  auto a = make();
  auto ga = split_weight_decay(*a);
  auto oa = make_adamw(ga, tc);
  step(a, *oa);
  step(a, *oa);
  auto saved = adamw_state(*oa, ga);
  EXPECT_EQ(saved.at("optimizer.classifier.weight.step").item<int64_t>(), 2);

  auto b = make();
  {
    torch::NoGradGuard no_grad;
    auto pb = b->named_parameters();
    for (const auto& p : a->named_parameters()) pb[p.key()].copy_(p.value());
  }
  auto gb = split_weight_decay(*b);
  auto ob = make_adamw(gb, tc);
  load_adamw_state(*ob, gb, saved, "test");
  step(a, *oa);
  step(b, *ob);
  expect_same_parameters(a, b);
}

TEST(TrainMetrics, TopKPerClassAndConfusion) {
  MetricsAccumulator acc(6);
  // Sample 0: true 0, predicted 0. Sample 1: true 1, predicted 2, true class ranked 2nd.
  // Sample 2: true 2, predicted 2. Sample 3: true 1, ranked last (outside the top 5).
  auto logits = torch::tensor({{9., 1., 0., 0., 0., 0.},
                               {0., 5., 6., 0., 0., 0.},
                               {0., 0., 3., 0., 0., 0.},
                               {5., -9., 4., 3., 2., 1.}});
  acc.add(logits, torch::tensor({0, 1, 2, 1}, torch::kLong));
  auto m = acc.finish();
  EXPECT_EQ(m.count, 4);
  EXPECT_DOUBLE_EQ(m.top1, 0.5);
  EXPECT_DOUBLE_EQ(m.top5, 0.75);
  EXPECT_DOUBLE_EQ(m.per_class_accuracy[0], 1.0);
  EXPECT_DOUBLE_EQ(m.per_class_accuracy[1], 0.0);
  EXPECT_DOUBLE_EQ(m.per_class_accuracy[2], 1.0);
  EXPECT_DOUBLE_EQ(m.per_class_accuracy[3], -1);  // no samples
  EXPECT_DOUBLE_EQ(m.mean_class_accuracy, 2.0 / 3.0);
  EXPECT_EQ(m.confusion[1][2].item<int64_t>(), 1);
  EXPECT_EQ(m.confusion[1][0].item<int64_t>(), 1);
  EXPECT_EQ(m.confusion.sum().item<int64_t>(), 4);
  const double ce =
      torch::nn::functional::cross_entropy(logits, torch::tensor({0, 1, 2, 1}, torch::kLong))
          .item<double>();
  EXPECT_NEAR(m.loss, ce, 1e-6);
  EXPECT_THROW(acc.add(logits, torch::tensor({0, 1, 6, 1}, torch::kLong)), Error);
  auto j = to_json(m, {"a", "b"});
  EXPECT_EQ(j["per_class"][1]["name"], "b");
  EXPECT_TRUE(j["per_class"][3]["accuracy"].is_null());
}

TEST(TrainReport, SelfContainedHtmlWithPlots) {
  ReportInputs in;
  in.title = "test <report>";
  for (int s = 10; s <= 50; s += 10) {
    in.log.push_back(
        {{"type", "train"}, {"step", s}, {"loss", 1.0 / s}, {"acc", 0.5}, {"lr", 0.1}});
    in.log.push_back(
        {{"type", "val"}, {"step", s}, {"loss", 2.0 / s}, {"top1", s / 100.0}, {"top5", 0.9}});
  }
  MetricsAccumulator acc(3);
  acc.add(torch::eye(3), torch::tensor({0, 1, 1}, torch::kLong));
  in.metrics = acc.finish();
  in.class_names = {"cat & dog", "b", "c"};
  in.config = {{"lr", 0.1}};
  const std::string html = render_html_report(in);
  EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
  int svgs = 0;
  for (size_t p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
  EXPECT_EQ(svgs, 5);  // loss, accuracy, lr, per-class, confusion
  EXPECT_NE(html.find("Confusion matrix"), std::string::npos);
  EXPECT_NE(html.find("cat &amp; dog"), std::string::npos);
  EXPECT_NE(html.find("test &lt;report&gt;"), std::string::npos);
  EXPECT_NE(html.find("best validation top-1 (step 50)"), std::string::npos);
  EXPECT_NE(html.find("<polyline"), std::string::npos);
  for (const char* fetch : {"<script", "src=", "href=", "<link", "url(", "@import"})
    EXPECT_EQ(html.find(fetch), std::string::npos) << fetch;
}

TEST(TrainConfigJson, RoundTripAndErrors) {
  auto c = tiny_train_config();
  c.mixup_alpha = 0.4;
  c.output_dir = "/tmp/x";
  auto j = to_json(c);
  EXPECT_EQ(to_json(train_config_from_json(j, "t")), j);
  auto err = [](const nlohmann::json& j) {
    return error_of([&] { train_config_from_json(j, "run.json"); });
  };
  EXPECT_NE(err({{"learning_rate", 1}}).find("run.json: unknown key \"learning_rate\""),
            std::string::npos);
  EXPECT_NE(err({{"model", {{"width", 30}, {"heads", 4}}}}).find("run.json: model: width (30)"),
            std::string::npos);
  EXPECT_NE(err({{"precision", "fp16"}}).find("precision must be \"fp32\" or \"bf16\""),
            std::string::npos);
  EXPECT_NE(err({{"batch_size", 0}}).find("batch_size must be >= 1"), std::string::npos);
  EXPECT_NE(err({{"device", "tpu:x"}}).find("device \"tpu:x\""), std::string::npos);
  EXPECT_NE(err({{"betas", {0.9, 1.5}}}).find("betas"), std::string::npos);
  auto dir = fresh_dir("config");
  EXPECT_NE(error_of([&] {
              load_train_config((dir / "missing.json").string());
            }).find("missing.json: cannot open"),
            std::string::npos);
  std::ofstream((dir / "bad.json").string()) << "{\"lr\": ";
  EXPECT_NE(error_of([&] {
              load_train_config((dir / "bad.json").string());
            }).find("bad.json: not valid JSON"),
            std::string::npos);
  fs::remove_all(dir);
}

// The training tests run on one thread: their tensors are tiny, so more threads only add
// synchronisation, which on a loaded machine (other builds on the cores) costs minutes. One thread
// also makes the work, and so the result, the same on every run.
TEST(TrainTrainer, OverfitsASmallSet) {
  vidfuse::test::ThreadCountScope threads(1);
  auto data = fusion_test::random_dataset(16, 4, 5);
  auto c = tiny_train_config();
  c.model = fusion_test::tiny_fusion_config(4);
  c.model.use_cls = true;
  c.batch_size = 8;
  c.max_steps = 60;  // the loss passes 0.05 by step ~40 (on one thread the run is always the same)
  c.weight_decay = 0;
  c.min_lr = c.lr;  // constant after warmup
  Trainer trainer(c, data);
  auto summary = trainer.fit();
  EXPECT_EQ(summary.steps, c.max_steps);
  EXPECT_LT(summary.train_loss, 0.05);
  auto m = evaluate(trainer.model(), *data);
  EXPECT_DOUBLE_EQ(m.top1, 1.0);
  EXPECT_LT(m.loss, 0.05);
}

// On a GPU (scripts/gpu-check.sh): the same 20 steps on CUDA (SDPA's kernels, cuBLAS with TF32 off)
// end at the parameters the CPU reaches, within float32 rounding accumulated over the steps.
TEST(TrainTrainerCuda, StepsOnCudaEqualStepsOnCpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto data = fusion_test::random_dataset(64, 4, 3);
  std::vector<std::map<std::string, torch::Tensor>> params;
  for (const char* device : {"cpu", "cuda"}) {
    auto c = tiny_train_config();
    c.model = fusion_test::tiny_fusion_config(4);
    c.model.use_cls = true;
    c.max_steps = 20;
    c.device = device;
    Trainer trainer(c, data);
    trainer.fit();
    std::map<std::string, torch::Tensor> p;
    for (const auto& kv : trainer.model()->named_parameters())
      p[kv.key()] = kv.value().detach().cpu();
    params.push_back(std::move(p));
  }
  for (const auto& [name, cpu] : params[0])
    EXPECT_LE(vidfuse::test::rel_error(params[1].at(name), cpu), 1e-3) << name;
}

TEST(TrainTrainer, FusionBeatsSingleStreamBaselinesWhenBothStreamsMatter) {
  vidfuse::test::ThreadCountScope threads(1);
  auto train = fusion_test::xor_dataset(512, 1);
  auto test = fusion_test::xor_dataset(256, 2);
  std::map<models::FusionArch, double> top1;
  for (auto arch : {models::FusionArch::kFusion, models::FusionArch::kSemantic,
                    models::FusionArch::kMotion, models::FusionArch::kLate}) {
    auto c = tiny_train_config();
    c.model.arch = arch;
    // Fusion solves XOR between steps 80 (0.72) and 100 (0.996): 140 leaves a margin, and every
    // arch gets the same steps so the baselines are not starved.
    c.max_steps = 140;
    Trainer trainer(c, train);
    trainer.fit();
    top1[arch] = evaluate(trainer.model(), *test).top1;
  }
  const double fusion = top1[models::FusionArch::kFusion];
  std::cout << "held-out top-1: fusion " << fusion << ", semantic "
            << top1[models::FusionArch::kSemantic] << ", motion "
            << top1[models::FusionArch::kMotion] << ", late " << top1[models::FusionArch::kLate]
            << "\n";
  EXPECT_GT(fusion, 0.9);
  // One stream alone carries no information about a XOR label: chance level.
  EXPECT_LT(top1[models::FusionArch::kSemantic], 0.65);
  EXPECT_LT(top1[models::FusionArch::kMotion], 0.65);
  // A head linear in separately pooled features cannot represent XOR (at most 3 of 4 cells).
  EXPECT_LT(top1[models::FusionArch::kLate], 0.8);
}

TEST(TrainTrainer, ResumedRunFollowsTheSameTrajectory) {
  vidfuse::test::ThreadCountScope threads(1);
  // Dropout and mixup on, so RNG state matters; 40 samples / batch 8 = 5 steps per epoch, and the
  // break at step 7 is mid-epoch, after a validation and between checkpoints.
  auto train = fusion_test::random_dataset(40, 3, 11);
  auto val = fusion_test::random_dataset(12, 3, 12);
  auto c = tiny_train_config();
  c.model = fusion_test::tiny_fusion_config(3);
  c.model.use_cls = true;
  c.model.dropout = 0.2;
  c.model.attn_dropout = 0.1;
  c.mixup_alpha = 0.4;
  c.mixup_prob = 0.7;
  c.label_smoothing = 0.1;
  c.batch_size = 8;
  c.max_steps = 13;
  c.warmup_steps = 3;
  c.eval_every = 3;
  c.log_every = 2;

  Trainer straight(c, train, val);
  straight.fit();

  auto dir = fresh_dir("resume");
  c.output_dir = dir.string();
  {
    Trainer first(c, train, val);
    first.fit(/*stop_at_step=*/7);
    EXPECT_EQ(first.step(), 7);
  }
  torch::manual_seed(999);  // whatever happens in between must not matter
  auto resumed_config = c;
  resumed_config.resume = "auto";
  Trainer resumed(resumed_config, train, val);
  EXPECT_EQ(resumed.step(), 7);
  resumed.fit();
  EXPECT_EQ(resumed.step(), 13);
  expect_same_parameters(straight.model(), resumed.model());

  // The log of the resumed run reads as one run: train records at every 2nd step and the end.
  std::vector<int64_t> train_steps;
  for (const auto& r : resumed.log())
    if (r["type"] == "train") train_steps.push_back(r["step"].get<int64_t>());
  EXPECT_EQ(train_steps, (std::vector<int64_t>{2, 4, 6, 8, 10, 12, 13}));
  std::vector<double> a, b;
  for (const auto& r : straight.log()) a.push_back(r["loss"].get<double>());
  for (const auto& r : resumed.log()) b.push_back(r["loss"].get<double>());
  EXPECT_EQ(a, b);
  fs::remove_all(dir);
}

TEST(TrainTrainer, WritesLogCheckpointsMetricsAndReport) {
  vidfuse::test::ThreadCountScope threads(1);
  auto train = fusion_test::xor_dataset(64, 3);
  auto val = fusion_test::xor_dataset(32, 4);
  auto dir = fresh_dir("outputs");
  auto c = tiny_train_config();
  c.epochs = 2;
  c.output_dir = dir.string();
  c.log_every = 1;
  Trainer trainer(c, train, val);
  auto summary = trainer.fit();
  EXPECT_EQ(summary.steps, 4);
  ASSERT_TRUE(summary.val.has_value());
  EXPECT_EQ(summary.val->count, 32);
  for (const char* f : {"log.jsonl", "checkpoint-last.safetensors", "checkpoint-best.safetensors",
                        "metrics.json", "report.html"})
    EXPECT_TRUE(fs::exists(dir / f)) << f;
  std::ifstream log((dir / "log.jsonl").string());
  std::string line;
  int train_records = 0, val_records = 0;
  while (std::getline(log, line)) {
    auto j = nlohmann::json::parse(line);
    train_records += j["type"] == "train";
    val_records += j["type"] == "val";
  }
  EXPECT_EQ(train_records, 4);
  EXPECT_EQ(val_records, 2);  // end of each epoch
  weights::SafetensorsFile ckpt((dir / "checkpoint-last.safetensors").string());
  EXPECT_EQ(ckpt.metadata().at("format"), "vidfuse-train-checkpoint");
  EXPECT_TRUE(ckpt.contains("model.classifier.weight"));
  EXPECT_TRUE(ckpt.contains("optimizer.classifier.weight.exp_avg"));
  EXPECT_TRUE(ckpt.contains("rng.cpu"));
  // The input standardisation fitted on the train set travels with the weights.
  auto mean = ckpt.get("model.motion_embed.input_mean");
  EXPECT_TRUE(torch::allclose(mean, trainer.model()->motion_embed->input_mean));
  EXPECT_GT(mean.abs().sum().item<double>(), 0);
  // The config trained with, its device resolved ("auto" becomes the device the run used).
  nlohmann::json expected = to_json(c);
  expected["device"] = resolve_device(c.device).device;
  EXPECT_EQ(nlohmann::json::parse(ckpt.metadata().at("config")), expected);
  auto metrics = nlohmann::json::parse(std::ifstream((dir / "metrics.json").string()));
  EXPECT_EQ(metrics["metrics"]["per_class"][1]["name"], "different");
  fs::remove_all(dir);
}

namespace {
// Samples named like the store files they would come from.
class NamedDataset : public data::TensorDataset {
 public:
  using data::TensorDataset::TensorDataset;
  std::string sample_name(int64_t index) const override {
    return "store/v" + std::to_string(index) + ".safetensors";
  }
};
}  // namespace

TEST(TrainTrainer, NonFiniteLossStopsNamingTheStepAndTheBatch) {
  vidfuse::test::ThreadCountScope threads(1);
  const int64_t n = 16;
  auto semantic = torch::randn({n, 2, 4, 4, 8});
  semantic[5].fill_(std::numeric_limits<float>::quiet_NaN());  // one sample's features are NaN
  auto data =
      std::make_shared<NamedDataset>(semantic, torch::Tensor(), torch::randn({n, 8, 2, 2, 2}),
                                     torch::randint(0, 2, {n}, torch::kLong));
  auto dir = fresh_dir("nonfinite");
  auto c = tiny_train_config();
  c.model.standardize_inputs = false;  // else the NaN reaches every batch through the statistics
  c.batch_size = 8;
  c.max_steps = 4;  // sample 5 is met in step 1 or 2
  c.output_dir = dir.string();
  Trainer trainer(c, data);
  const std::string what = error_of([&] { trainer.fit(); });
  EXPECT_NE(what.find("the loss turned non-finite at step "), std::string::npos) << what;
  EXPECT_NE(what.find("store/v5.safetensors"), std::string::npos) << what;
  EXPECT_LE(trainer.step(), 1);
  // No step was taken on the NaN, and no checkpoint claims the run went anywhere.
  for (const auto& p : trainer.model()->parameters())
    EXPECT_TRUE(torch::isfinite(p).all().item<bool>());
  EXPECT_FALSE(fs::exists(dir / "checkpoint-last.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "checkpoint-best.safetensors"));
  fs::remove_all(dir);
}

TEST(TrainTrainer, BadSetupsGiveClearErrors) {
  vidfuse::test::ThreadCountScope threads(1);
  auto data = fusion_test::xor_dataset(16, 1);
  auto c = tiny_train_config();
  EXPECT_NE(error_of([&] {
              Trainer(c, data);
            }).find("train set: 16 samples, fewer than one batch (batch_size 32)"),
            std::string::npos);
  c.batch_size = 8;
  auto wrong = tiny_train_config();
  wrong.batch_size = 8;
  wrong.model.semantic_dim = 16;
  EXPECT_NE(error_of([&] { Trainer(wrong, data); })
                .find("train set: fusion model (fusion): semantic features have 8 channels, the "
                      "config expects semantic_dim 16"),
            std::string::npos);
  auto labels = std::make_shared<data::TensorDataset>(
      torch::randn({8, 2, 4, 4, 8}), torch::Tensor(), torch::randn({8, 8, 2, 2, 2}),
      torch::full({8}, 5, torch::kLong));
  EXPECT_NE(error_of([&] { Trainer(c, labels); }).find("label 5 is outside [0, 2)"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              Trainer(c, data, nullptr, nullptr).resume("/nonexistent/ckpt.safetensors");
            }).find("/nonexistent/ckpt.safetensors"),
            std::string::npos);

  // Resuming with another model config names the differing field.
  auto dir = fresh_dir("badresume");
  c.output_dir = dir.string();
  c.max_steps = 1;
  Trainer(c, data).fit();
  auto other = c;
  other.model.width = 64;
  other.resume = "auto";
  EXPECT_NE(error_of([&] { Trainer(other, data); }).find("width 32 vs 64"), std::string::npos);
  auto more_data = fusion_test::xor_dataset(24, 1);
  auto same = c;
  same.resume = (dir / "checkpoint-last.safetensors").string();
  EXPECT_NE(error_of([&] { Trainer(same, more_data); }).find("train_size 16, this run has 24"),
            std::string::npos);
  weights::save_safetensors((dir / "plain.safetensors").string(), {{"x", torch::zeros({1})}});
  same.resume = (dir / "plain.safetensors").string();
  EXPECT_NE(error_of([&] { Trainer(same, data); }).find("not a vidfuse training checkpoint"),
            std::string::npos);
  fs::remove_all(dir);
}

TEST(TrainData, InputStatisticsStandardiseEachChannel) {
  const int64_t n = 40;
  auto channel_offsets = torch::arange(8, torch::kFloat);
  auto semantic = torch::randn({n, 2, 4, 4, 8}) * 3 + channel_offsets;
  auto cls = torch::randn({n, 2, 8}) * 3 + channel_offsets;
  auto motion = torch::randn({n, 8, 2, 2, 2}) * 0.5 + 7;
  motion.select(1, 0).fill_(5);  // a dead channel: constant over the whole set
  auto data =
      std::make_shared<data::TensorDataset>(semantic, cls, motion, torch::zeros({n}, torch::kLong));
  auto c = fusion_test::tiny_fusion_config();
  c.use_cls = true;
  auto model = models::FusionModel(c);
  fit_input_statistics(*model, *data, /*max_samples=*/n);

  auto tokens = torch::cat({semantic.reshape({-1, 8}), cls.reshape({-1, 8})}).to(torch::kDouble);
  auto expected_mean = tokens.mean(0).to(torch::kFloat);
  auto expected_std = tokens.var(0, /*unbiased=*/false).sqrt().to(torch::kFloat);
  EXPECT_TRUE(torch::allclose(model->semantic_embed->input_mean, expected_mean, 1e-4, 1e-4));
  EXPECT_TRUE(torch::allclose(model->semantic_embed->input_std, expected_std, 1e-4, 1e-4));
  auto m = model->motion_embed;
  EXPECT_NEAR(m->input_mean[0].item<double>(), 5.0, 1e-5);
  EXPECT_NEAR(m->input_mean[3].item<double>(), 7.0, 0.1);
  // The dead channel gets 1% of the stream's RMS std instead of ~0.
  const double rms =
      m->input_std.slice(0, 1).pow(2).mean().sqrt().item<double>() * std::sqrt(7.0 / 8.0);
  EXPECT_NEAR(m->input_std[0].item<double>(), 0.01 * rms, 0.002 * rms);
  auto logits =
      model->forward({semantic.slice(0, 0, 2), cls.slice(0, 0, 2), motion.slice(0, 0, 2)});
  EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
}

TEST(TrainData, CollateNamesTheOddSample) {
  std::vector<data::Sample> s(2);
  s[0].semantic = torch::zeros({2, 4, 4, 8});
  s[1].semantic = torch::zeros({2, 4, 5, 8});
  EXPECT_NE(
      error_of([&] {
        data::collate(s, {10, 42});
      }).find("dataset sample 42: semantic has shape [2, 4, 5, 8] but sample 10 has [2, 4, 4, 8]"),
      std::string::npos);
  auto perm = epoch_permutation(10, 3, 1);
  std::vector<int64_t> sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 10; ++i) EXPECT_EQ(sorted[i], i);
  EXPECT_EQ(perm, epoch_permutation(10, 3, 1));
  EXPECT_NE(perm, epoch_permutation(10, 3, 2));
}
