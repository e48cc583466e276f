// VideoModel* / VideoDataset* / TrainFromVideos*: the integrated classifier and training from
// videos, on a few tiny generated videos with small random backbones. VideoModel's features are
// what `extract` stores for the same video, its logits are the fusion model's on those features,
// frozen backbones get no gradients (and unfrozen ones do), augmentation moves the sampled frames
// only in training and reproducibly, and a short training run from videos learns.
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "test_models_util.h"
#include "test_train_synthetic.h"
#include "test_video_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/data/extractor.h"
#include "vidfuse/data/feature_store.h"
#include "vidfuse/data/stream_inputs.h"
#include "vidfuse/data/video_dataset.h"
#include "vidfuse/models/backbones.h"
#include "vidfuse/models/video_model.h"
#include "vidfuse/train/train_data.h"
#include "vidfuse/train/trainer.h"
#include "vidfuse/weights/safetensors.h"

using namespace vidfuse;
using namespace vidfuse::test;
namespace fs = std::filesystem;

namespace {

// The built-in topology (width 0.25): a 9-frame 193² clip costs ~0.1 s.
models::InceptionI3d small_i3d() { return models::i3d_from_spec(models::kBuiltinBackbone); }

// 32² semantic frames (a 2×2 patch grid), 4 segments; one 9-frame 193² motion clip (I3D's
// minimum) from the 25 fps resampled video.
data::ExtractRecipe tiny_options() {
  data::ExtractRecipe o;
  o.dinov3 = "tiny-dinov3";
  o.i3d = "small-i3d";
  o.semantic_size = 32;
  o.semantic_sampling.num_segments = 4;
  o.motion_clip = 9;
  o.motion_short_side = 193;
  o.motion_crop = 193;
  return o;
}

models::FusionConfig tiny_fusion(const models::FusionInput& f, int64_t classes = 2) {
  auto c = fusion_test::tiny_fusion_config(classes);
  c.semantic_dim = f.semantic.size(4);
  c.semantic_grid = {f.semantic.size(1), f.semantic.size(2), f.semantic.size(3)};
  c.motion_dim = f.motion.size(1);
  c.motion_grid = {f.motion.size(2), f.motion.size(3), f.motion.size(4)};
  c.use_cls = true;
  return c;
}

// Four 2.5 s videos of two kinds (labels 0 and 1) plus a corrupt file, written once.
struct Videos {
  ScratchDir dir;
  data::Manifest manifest;  // the four good ones
  std::string list_file;    // the same, as a `path label` list
  std::string corrupt;
  static Videos& get() {
    static Videos v;
    return v;
  }

 private:
  Videos() {
    io::VideoWriterOptions o;
    o.codec = "h264";
    o.fps = 12;
    o.gop = 6;
    std::ofstream list(dir / "train.txt");
    for (int k = 0; k < 4; ++k) {
      const std::string file = dir / ("clip" + std::to_string(k) + ".mp4");
      // Class 0 counts up through small indices, class 1 through large ones: the frames differ.
      io::write_video(file, code_frames(30, 48, 64, (k % 2) * 512 + k * 40), o);
      manifest.videos.push_back({"clip" + std::to_string(k), file, k % 2});
      list << file << " " << k % 2 << "\n";
    }
    manifest.source = "test";
    list_file = dir / "train.txt";
    corrupt = dir / "corrupt.mp4";
    write_bytes(corrupt, "not a video");
  }
};

models::VideoBatch batch_of(const std::vector<data::StreamInputs>& inputs) {
  std::vector<torch::Tensor> s, m;
  for (const auto& in : inputs) {
    s.push_back(in.semantic);
    m.push_back(in.motion);
  }
  return {torch::stack(s), torch::stack(m)};
}

}  // namespace

// (a) + (b): the live features equal the stored ones (fp32 storage) and the logits equal the
// fusion model's on the stored features.
TEST(VideoModel, FeaturesAndLogitsMatchExtractedStore) {
  const auto& v = Videos::get();
  ScratchDir store;
  data::ExtractRecipe o = tiny_options();
  data::ExtractRun run;
  run.store_dir = store.path().string();
  run.progress = data::ProgressMode::Off;
  run.workers = 1;
  o.storage_dtype = torch::kFloat32;
  o.pool = 2;  // exercise the shared patch-grid pooling (2×2 → 1×1)
  data::Manifest two = v.manifest;
  two.videos.resize(2);
  data::ExtractModels em;
  em.dinov3 = tiny_dinov3();
  em.i3d = small_i3d();
  em.dinov3->fuse_for_inference();
  em.i3d->fuse_for_inference(torch::kFloat32);
  const auto summary = data::extract_features(two, em, o, run);
  ASSERT_EQ(summary.done, 2) << summary.stop_reason;

  std::vector<data::StreamInputs> inputs;
  for (const auto& e : two.videos)
    inputs.push_back(data::load_stream_inputs(e.path, o, true, true));
  const models::VideoBatch batch = batch_of(inputs);
  ASSERT_EQ(batch.semantic.sizes(), (std::vector<int64_t>{2, 4, 3, 32, 32}));
  ASSERT_EQ(batch.motion.sizes(), (std::vector<int64_t>{2, 3, 9, 193, 193}));

  // Fresh, unfused copies of the same backbones: the VideoModel fuses them itself.
  models::FusionInput stored;
  {
    std::vector<torch::Tensor> s, c, m;
    for (const auto& e : two.videos) {
      auto t = weights::load_safetensors(data::store_file_path(run.store_dir, e.id));
      s.push_back(t.at("semantic.patch"));
      c.push_back(t.at("semantic.cls"));
      m.push_back(t.at("motion.mixed_5c"));
    }
    stored = {torch::stack(s), torch::stack(c), torch::stack(m)};
  }
  torch::manual_seed(3);
  models::FusionModel fusion(tiny_fusion(stored));
  models::VideoModel model(tiny_dinov3(), small_i3d(), fusion, o.pool);
  model->eval();
  const models::FusionInput live = model->features(batch);
  EXPECT_EQ(live.semantic.sizes(), stored.semantic.sizes());
  EXPECT_LE(rel_error(live.semantic, stored.semantic), 1e-4);
  EXPECT_LE(rel_error(live.semantic_cls, stored.semantic_cls), 1e-4);
  EXPECT_LE(rel_error(live.motion, stored.motion), 1e-4);

  torch::NoGradGuard no_grad;
  const torch::Tensor logits = model->forward(batch);
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 2}));
  EXPECT_LE(rel_error(logits, fusion->forward(stored)), 1e-4);
}

namespace {

// A VideoModel over the tiny backbones with a fusion model sized for `batch`'s features.
models::VideoModel tiny_video_model(const models::VideoBatch& batch, int64_t classes = 2) {
  auto dinov3 = tiny_dinov3();
  auto i3d = small_i3d();
  models::FusionInput f;
  {
    torch::NoGradGuard no_grad;
    f = models::backbone_features(dinov3, i3d, batch);
  }
  torch::manual_seed(5);
  return models::VideoModel(dinov3, i3d, models::FusionModel(tiny_fusion(f, classes)));
}

std::vector<std::string> with_grad(torch::nn::Module& m, const std::string& prefix) {
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters())
    if (p.key().rfind(prefix, 0) == 0 && p.value().grad().defined() &&
        p.value().grad().abs().sum().item<double>() > 0)
      names.push_back(p.key());
  return names;
}

}  // namespace

// (c): frozen backbones take no gradient and stay in eval mode; unfrozen ones learn, with I3D's
// BatchNorm still on its running statistics.
TEST(VideoModel, FrozenAndTrainableBackbones) {
  const auto& v = Videos::get();
  const data::ExtractRecipe o = tiny_options();
  const models::VideoBatch batch =
      batch_of({data::load_stream_inputs(v.manifest.videos[0].path, o, true, true)});
  models::VideoModel model = tiny_video_model(batch);
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.key());
  for (const char* prefix : {"dinov3.", "i3d.", "fusion."})
    EXPECT_TRUE(std::any_of(names.begin(), names.end(), [&](const std::string& n) {
      return n.rfind(prefix, 0) == 0;
    })) << prefix;

  const torch::Tensor label = torch::tensor({1}, torch::kLong);
  auto step = [&] {
    model->zero_grad();
    torch::nn::functional::cross_entropy(model->forward(batch), label).backward();
  };
  model->train();
  EXPECT_FALSE(model->backbones_trainable());
  EXPECT_FALSE(model->dinov3->is_training());
  EXPECT_FALSE(model->i3d->is_training());
  EXPECT_TRUE(model->fusion->is_training());
  step();
  EXPECT_FALSE(with_grad(*model, "fusion.").empty());
  EXPECT_EQ(with_grad(*model, "dinov3."), std::vector<std::string>{});
  EXPECT_EQ(with_grad(*model, "i3d."), std::vector<std::string>{});
  for (const auto& p : model->named_parameters())
    if (p.key().rfind("fusion.", 0) != 0) {
      EXPECT_FALSE(p.value().requires_grad()) << p.key();
    }

  model->set_backbones_trainable(true);
  model->train();
  EXPECT_TRUE(model->dinov3->is_training());
  EXPECT_TRUE(model->i3d->is_training());
  EXPECT_FALSE(model->i3d->Conv3d_1a_7x7->bn->is_training());
  EXPECT_FALSE(model->i3d->Mixed_5c->b3b->bn->is_training());
  const torch::Tensor mean_before = model->i3d->Mixed_4b->b0->bn->running_mean.clone();
  step();
  const auto dino = with_grad(*model, "dinov3."), i3d = with_grad(*model, "i3d.");
  auto has = [](const std::vector<std::string>& v, const std::string& n) {
    return std::find(v.begin(), v.end(), n) != v.end();
  };
  EXPECT_TRUE(has(dino, "dinov3.embeddings.patch_embeddings.weight"));
  EXPECT_TRUE(has(dino, "dinov3.layer.0.attention.q_proj.weight"));
  EXPECT_TRUE(has(i3d, "i3d.Conv3d_1a_7x7.conv3d.weight"));
  EXPECT_TRUE(has(i3d, "i3d.Mixed_5c.b3b.conv3d.weight"));
  EXPECT_FALSE(with_grad(*model, "fusion.").empty());
  EXPECT_TRUE(torch::equal(mean_before, model->i3d->Mixed_4b->b0->bn->running_mean));

  // Frozen again: back on the fused paths, and they agree with the plain ones.
  model->eval();
  torch::Tensor plain;
  {
    torch::NoGradGuard no_grad;
    plain = model->forward(batch);
  }
  model->set_backbones_trainable(false);
  EXPECT_TRUE(model->i3d->fused());
  EXPECT_LE(rel_error(model->forward(batch), plain), 1e-4);
}

// (d): augmentation moves frames and crops in training only, reproducibly.
TEST(VideoDataset, AugmentationOnlyInTrainingAndSeeded) {
  const auto& v = Videos::get();
  data::VideoDatasetOptions o;
  o.recipe = tiny_options();
  o.seed = 42;
  // Semantic stream only: these checks are about sampling, I3D would only cost time.
  auto make = [&](bool training, uint64_t seed, bool hflip = false) {
    data::VideoDatasetOptions x = o;
    x.training = training;
    x.seed = seed;
    x.augment.hflip = hflip;
    return data::VideoDataset(v.manifest, tiny_dinov3(), models::InceptionI3d(nullptr), x);
  };
  const data::StreamInputs reference =
      data::load_stream_inputs(v.manifest.videos[0].path, o.recipe, true, false);

  const auto eval = make(false, 42);
  for (uint64_t draw : {0, 1, 7}) {
    const auto in = eval.inputs(0, draw);
    EXPECT_EQ(in.semantic_indices, reference.semantic_indices);
    EXPECT_TRUE(torch::equal(in.semantic, reference.semantic));
    EXPECT_EQ(in.crop.height, 48);
    EXPECT_EQ(in.crop.width, 64);
  }
  const auto s0 = eval.get(0), s1 = eval.get(0);
  EXPECT_TRUE(torch::equal(s0.semantic, s1.semantic));
  EXPECT_FALSE(s0.motion.defined());

  const auto train = make(true, 42), same_seed = make(true, 42), other_seed = make(true, 43);
  const auto a = train.inputs(0, 0), b = train.inputs(0, 1);
  EXPECT_TRUE(a.semantic_indices != b.semantic_indices || a.crop.top != b.crop.top ||
              a.crop.height != b.crop.height);
  EXPECT_NE(a.semantic_indices, reference.semantic_indices);  // 7.5-frame segments: jittered
  EXPECT_FALSE(torch::equal(a.semantic, reference.semantic));
  const auto again = same_seed.inputs(0, 0);
  EXPECT_EQ(again.semantic_indices, a.semantic_indices);
  EXPECT_TRUE(torch::equal(again.semantic, a.semantic));
  EXPECT_FALSE(torch::equal(other_seed.inputs(0, 0).semantic, a.semantic));
  // get() counts visits: the first two equal draws 0 and 1, a fresh dataset repeats them.
  EXPECT_TRUE(torch::equal(train.get(0).semantic, train.sample(0, 0).semantic));
  EXPECT_TRUE(torch::equal(train.get(0).semantic, train.sample(0, 1).semantic));
  EXPECT_TRUE(torch::equal(same_seed.get(0).semantic, train.sample(0, 0).semantic));
  // Still within the video's segments and its frame.
  for (int64_t k = 0; k < 4; ++k) {
    EXPECT_GE(a.semantic_indices[k], k * 30 / 4);
    EXPECT_LT(a.semantic_indices[k], (k + 1) * 30 / 4 + 1);
  }
  EXPECT_LE(a.crop.top + a.crop.height, 48);
  EXPECT_LE(a.crop.left + a.crop.width, 64);

  // No mirroring unless asked for.
  int flipped = 0, flipped_on = 0;
  const auto with_flip = make(true, 42, true);
  for (uint64_t d = 0; d < 8; ++d) {
    flipped += train.inputs(1, d).flipped;
    flipped_on += with_flip.inputs(1, d).flipped;
  }
  EXPECT_EQ(flipped, 0);
  EXPECT_GT(flipped_on, 0);
  EXPECT_LT(flipped_on, 8);
}

TEST(VideoDataset, MotionClipJitter) {
  const auto& v = Videos::get();
  data::ExtractRecipe o = tiny_options();
  data::VideoAugment aug;
  const auto centred = data::load_stream_inputs(v.manifest.videos[1].path, o, false, true);
  ASSERT_EQ(centred.motion_indices.size(), 9u);
  std::set<int64_t> starts;
  for (uint64_t seed = 0; seed < 6; ++seed) {
    const auto in = data::load_stream_inputs(v.manifest.videos[1].path, o, false, true, &aug, seed);
    ASSERT_EQ(in.motion.sizes(), centred.motion.sizes());
    starts.insert(in.motion_indices.front());
  }
  EXPECT_GT(starts.size(), 1u);
}

TEST(VideoDataset, BadVideos) {
  const auto& v = Videos::get();
  data::Manifest m = v.manifest;
  m.videos.insert(m.videos.begin() + 1, {"corrupt", v.corrupt, 1});
  data::VideoDatasetOptions o;
  o.recipe = tiny_options();
  const data::VideoDataset strict(m, tiny_dinov3(), nullptr, o);
  EXPECT_THROW_WITH(strict.get(1), v.corrupt);
  o.skip_bad = true;
  std::ostringstream log;
  o.log = &log;
  const data::VideoDataset lenient(m, tiny_dinov3(), nullptr, o);
  const data::Sample s = lenient.get(1);
  EXPECT_EQ(s.label, m.videos[2].label);  // the next readable video stands in
  EXPECT_TRUE(torch::equal(s.semantic, lenient.get(2).semantic));
  ASSERT_EQ(lenient.failures().size(), 1u);
  EXPECT_NE(lenient.failures().at(1).find(v.corrupt), std::string::npos);
  EXPECT_NE(log.str().find(v.corrupt), std::string::npos);
  lenient.get(1);
  const std::string lines = log.str();
  EXPECT_EQ(std::count(lines.begin(), lines.end(), '\n'), 1);  // reported once
}

// (e): the Trainer, unchanged, learns from videos (4 clips overfitted) through the train
// config's data section.
TEST(TrainFromVideos, LossGoesDown) {
  const auto& v = Videos::get();
  train::TrainConfig c;
  c.data.source = "videos";
  c.data.train = v.list_file;
  c.data.extract = {{"dinov3", "builtin"}, {"i3d", "builtin"},
                    {"semantic_size", 32}, {"semantic_sampling", {{"num_segments", 4}}},
                    {"motion_clip", 9},    {"motion_short_side", 193},
                    {"motion_crop", 193}};
  c.data.augment.scale = {0.8, 1.0};
  c.model = fusion_test::tiny_fusion_config();  // widths and grids are fitted to the data
  c.model.use_cls = true;
  c.batch_size = 4;
  c.max_steps = 40;
  c.lr = 3e-3;
  c.min_lr = 3e-3;
  c.warmup_steps = 0;
  c.weight_decay = 0;
  c.label_smoothing = 0;
  c.log_every = 1;
  c.seed = 1;
  auto data = train::open_train_data(c.data, c.model.arch, c.seed);
  ASSERT_TRUE(data.extract.has_value());
  EXPECT_EQ(data.extract->semantic_size, 32);
  EXPECT_EQ(data.extract->semantic_sampling.num_segments, 4);
  EXPECT_EQ(data.extract->semantic_sampling.kind, io::SamplingSpec::Kind::Segment);
  ASSERT_EQ(data.train->size(), 4);
  train::fit_model_to_data(c.model, *data.train, data.class_names);
  EXPECT_EQ(c.model.num_classes, 2);
  EXPECT_EQ(c.model.semantic_dim, 192);  // the built-in DINOv3
  EXPECT_EQ(c.model.motion_dim, 256);    // the built-in I3D's Mixed_5c
  train::Trainer trainer(c, data.train);
  const auto t0 = std::chrono::steady_clock::now();
  trainer.fit();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<double> losses;
  for (const auto& r : trainer.log())
    if (r.value("type", "") == "train") losses.push_back(r.value("loss", 0.0));
  ASSERT_EQ(losses.size(), 40u);
  const double first = (losses[0] + losses[1]) / 2, last = (losses[38] + losses[39]) / 2;
  std::ostringstream curve;
  for (double l : losses) curve << l << " ";
  EXPECT_LT(last, 0.5 * first) << curve.str();
  std::printf(
      "[ timing ] training from videos: %.1f clips/s (%d clips in %.1f s), loss %.3f -> %.3f\n",
      40 * 4 / seconds, 40 * 4, seconds, first, last);
}

#ifdef VIDFUSE_CLI
// The command line: `train --source videos` with its flags, then `predict` from the checkpoint
// alone (the resolved extraction settings travel in its config; there is no store).
TEST(TrainFromVideos, CommandLineTrainThenPredict) {
  const auto& v = Videos::get();
  ScratchDir out;
  auto run = [&](const std::string& args, std::string& output) {
    const std::string log = out / "log.txt";
    const int rc = std::system(
        (std::string(VIDFUSE_CLI) + " --threads 1 " + args + " > " + log + " 2>&1").c_str());
    output = read_bytes(log);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
  };
  std::string output;
  ASSERT_EQ(run("train --source videos --train " + v.list_file +
                    " --dinov3 builtin --i3d builtin --frames 4 --size 32 --motion-clip 9 "
                    "--motion-short-side 193 --motion-crop 193 --batch-size 2 --max-steps 2 "
                    "--width 32 --output " +
                    (out / "run"),
                output),
            0)
      << output;
  EXPECT_NE(output.find("from videos: backbones builtin | builtin, with augmentation"),
            std::string::npos)
      << output;
  ASSERT_EQ(run("predict --json --checkpoint " + (out / "run/checkpoint-last.safetensors") + " " +
                    v.manifest.videos[0].path + " " + v.corrupt,
                output),
            1)
      << output;
  EXPECT_NE(output.find("\"top\""), std::string::npos) << output;
  EXPECT_NE(output.find(v.corrupt), std::string::npos) << output;
}
#endif  // VIDFUSE_CLI
