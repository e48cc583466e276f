// The fusion model: shapes and names, gradients (finite differences in double precision), input
// validation, bf16 compute, configs, and the analytic cost.
#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "test_train_synthetic.h"
#include "test_util.h"
#include "vidfuse/core/error.h"
#include "vidfuse/models/fusion.h"

using namespace vidfuse;
using models::FusionArch;
using models::FusionConfig;
using models::FusionInput;
using models::FusionModel;

namespace {

FusionConfig gradcheck_config() {
  FusionConfig c;
  c.semantic_dim = 6;
  c.motion_dim = 5;
  c.semantic_grid = {2, 4, 4};  // pooled 2x2 -> tables of 2 x 2 x 2
  c.motion_grid = {2, 2, 2};
  c.use_cls = true;
  c.semantic_pool = 2;
  c.width = 8;
  c.heads = 2;
  c.depth = 2;
  c.mlp_ratio = 1.5;
  c.bidirectional = true;
  c.pool_queries = 2;
  c.dropout = 0;
  c.num_classes = 3;
  return c;
}

// Inputs whose grids differ from the configured ones (3 frames, 3x3 patches -> pooled 2x2 with a
// partial window; motion 3 x 2 x 1), so interpolation and partial pooling are exercised too.
FusionInput gradcheck_input(torch::ScalarType dtype) {
  torch::manual_seed(7);
  FusionInput in;
  in.semantic = torch::randn({2, 3, 3, 3, 6}, dtype);
  in.semantic_cls = torch::randn({2, 3, 6}, dtype);
  in.motion = torch::randn({2, 5, 3, 2, 1}, dtype);
  return in;
}

// d(sum(logits * weights))/d(x[i]) by central differences against autograd.
void expect_gradient_matches(const std::string& what, torch::Tensor x,
                             const std::function<torch::Tensor()>& loss, int entries) {
  ASSERT_TRUE(x.grad().defined()) << what << " got no gradient";
  auto grad = x.grad().clone().reshape(-1);
  auto flat = x.detach().view(-1);  // aliases x's storage
  const double h = 1e-6;
  const int64_t n = flat.numel();
  for (int e = 0; e < entries; ++e) {
    const int64_t i = (e * 7919 + 3) % n;
    torch::NoGradGuard no_grad;
    const double orig = flat[i].item<double>();
    flat[i] = orig + h;
    const double plus = loss().item<double>();
    flat[i] = orig - h;
    const double minus = loss().item<double>();
    flat[i] = orig;
    const double numeric = (plus - minus) / (2 * h);
    const double analytic = grad[i].item<double>();
    EXPECT_NEAR(analytic, numeric, 1e-7 + 1e-6 * std::abs(numeric)) << what << " entry " << i;
  }
}

void check_gradients_match_finite_differences() {
  auto model = FusionModel(gradcheck_config());
  model->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;  // open the residual gates, or the layers would get no gradient
    for (auto& p : model->named_parameters())
      if (p.key().find("_gate") != std::string::npos) p.value().fill_(0.5);
  }
  auto in = gradcheck_input(torch::kDouble);
  in.semantic.requires_grad_(true);
  in.semantic_cls.requires_grad_(true);
  in.motion.requires_grad_(true);
  auto weights = torch::randn({2, 3}, torch::kDouble);
  auto loss = [&] { return (model->forward(in) * weights).sum(); };
  loss().backward();

  auto params = model->named_parameters();
  for (const char* name :
       {"semantic_embed.proj.weight", "semantic_embed.time_embed", "semantic_embed.row_embed",
        "semantic_embed.cls_embed", "motion_embed.type_embed", "motion_embed.col_embed",
        "layers.0.sem_attn.q_proj.weight", "layers.0.mot_attn.k_proj.weight",
        "layers.1.sem_ffn.fc1.weight", "layers.1.mot_norm.weight", "layers.0.sem_attn_gate",
        "layers.1.mot_ffn_gate", "semantic_pool.queries", "motion_pool.attn.v_proj.bias",
        "head_norm.bias", "classifier.weight"}) {
    SCOPED_TRACE(name);
    auto* p = params.find(name);
    ASSERT_NE(p, nullptr) << "no parameter " << name;
    expect_gradient_matches(name, *p, loss, 4);
  }
  expect_gradient_matches("input semantic", in.semantic, loss, 6);
  expect_gradient_matches("input semantic_cls", in.semantic_cls, loss, 4);
  expect_gradient_matches("input motion", in.motion, loss, 6);
}

}  // namespace

TEST(FusionModel, GradientsMatchFiniteDifferences) {
  for (const auto kernel : vidfuse::test::kBothKernels) {
    SCOPED_TRACE(vidfuse::test::kernel_name(kernel));
    vidfuse::test::AttentionKernelScope use(kernel);
    check_gradients_match_finite_differences();
  }
}

TEST(FusionModel, AttentionKernelsAgreeForwardAndBackward) {
  // fp32, training mode off (dropout), the default-sized heads: SDPA and the per-head path give
  // the same logits and the same parameter gradients to float32 rounding.
  torch::manual_seed(0);
  auto model = FusionModel(gradcheck_config());
  model->eval();
  {
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
      if (p.key().find("_gate") != std::string::npos) p.value().fill_(0.5);
  }
  auto in = gradcheck_input(torch::kFloat32);
  std::vector<torch::Tensor> logits, grads;
  for (const auto kernel : vidfuse::test::kBothKernels) {
    vidfuse::test::AttentionKernelScope use(kernel);
    model->zero_grad();
    auto out = model->forward(in);
    out.square().sum().backward();
    logits.push_back(out.detach());
    std::vector<torch::Tensor> g;
    for (auto& p : model->parameters())
      if (p.grad().defined()) g.push_back(p.grad().reshape(-1).clone());
    grads.push_back(torch::cat(g));
  }
  EXPECT_LE(vidfuse::test::rel_error(logits[0], logits[1]), 1e-5);
  EXPECT_LE(vidfuse::test::rel_error(grads[0], grads[1]), 1e-5);
}

TEST(FusionModel, EveryArchProducesLogitsAndUsesOnlyItsStreams) {
  for (FusionArch arch :
       {FusionArch::kFusion, FusionArch::kSemantic, FusionArch::kMotion, FusionArch::kLate}) {
    SCOPED_TRACE(models::arch_name(arch));
    auto c = gradcheck_config();
    c.arch = arch;
    auto model = FusionModel(c);
    auto in = gradcheck_input(torch::kFloat);
    if (arch == FusionArch::kSemantic) in.motion = torch::Tensor();
    if (arch == FusionArch::kMotion) in.semantic = in.semantic_cls = torch::Tensor();
    auto logits = model->forward(in);
    EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 3}));
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    std::set<std::string> names;
    for (const auto& p : model->named_parameters()) names.insert(p.key());
    EXPECT_EQ(names.count("semantic_embed.proj.weight"), arch != FusionArch::kMotion);
    EXPECT_EQ(names.count("motion_embed.proj.weight"), arch != FusionArch::kSemantic);
    EXPECT_EQ(names.count("layers.1.mot_ffn.fc2.weight"), arch == FusionArch::kFusion);
    EXPECT_EQ(names.count("semantic_pool.queries"),
              arch == FusionArch::kLate || arch == FusionArch::kFusion);
    EXPECT_EQ(names.count("pool.queries"),
              arch == FusionArch::kSemantic || arch == FusionArch::kMotion);
    EXPECT_TRUE(names.count("classifier.weight"));
  }
}

TEST(FusionModel, FreshModelIsLateFusionUntilItsGatesOpen) {
  auto c = gradcheck_config();
  auto fusion = FusionModel(c);
  c.arch = FusionArch::kLate;
  auto late = FusionModel(c);
  {
    torch::NoGradGuard no_grad;
    auto mine = fusion->named_parameters();
    for (auto& p : late->named_parameters()) p.value().copy_(*mine.find(p.key()));
  }
  fusion->eval();
  late->eval();
  auto in = gradcheck_input(torch::kFloat);
  // Exactly: a closed gate multiplies its branch by tanh(0) = 0.
  EXPECT_TRUE(torch::equal(fusion->forward(in), late->forward(in)));
  {
    torch::NoGradGuard no_grad;
    fusion->named_parameters().find("layers.0.sem_attn_gate")->fill_(1.0);
  }
  EXPECT_FALSE(torch::equal(fusion->forward(in), late->forward(in)));
}

TEST(FusionModel, JointPoolUsesOnePoolerOverBothStreams) {
  auto c = gradcheck_config();
  c.joint_pool = true;
  auto model = FusionModel(c);
  std::set<std::string> names;
  for (const auto& p : model->named_parameters()) names.insert(p.key());
  EXPECT_TRUE(names.count("pool.queries"));
  EXPECT_FALSE(names.count("semantic_pool.queries"));
  EXPECT_EQ(model->head_norm->weight.size(0), c.pool_queries * c.width);
  auto logits = model->forward(gradcheck_input(torch::kFloat));
  EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{2, 3}));
  auto round_trip = models::fusion_config_from_json(models::to_json(c), "test");
  EXPECT_TRUE(round_trip.joint_pool);
}

TEST(FusionModel, UnidirectionalHasNoMotionUpdates) {
  auto c = gradcheck_config();
  c.bidirectional = false;
  auto model = FusionModel(c);
  for (const auto& p : model->named_parameters()) {
    EXPECT_EQ(p.key().find("mot_attn"), std::string::npos) << p.key();
    EXPECT_EQ(p.key().find("mot_ffn"), std::string::npos) << p.key();
  }
  EXPECT_EQ(model->forward(gradcheck_input(torch::kFloat)).size(1), 3);
}

TEST(FusionModel, PredictionDependsOnTokenPositions) {
  // Position embeddings make the model order-aware: reversing the frames changes the logits.
  torch::manual_seed(3);
  auto model = FusionModel(gradcheck_config());
  model->eval();
  {
    // Trained tables are far from their 0.02-scale initialisation; give them unit scale so the
    // effect of order is well above rounding whatever the initial draw.
    torch::NoGradGuard no_grad;
    for (auto& p : model->named_parameters())
      if (p.key().find("_embed.time_embed") != std::string::npos ||
          p.key().find("_embed.row_embed") != std::string::npos)
        p.value().normal_(0, 1);
  }
  auto in = gradcheck_input(torch::kFloat);
  auto flipped = in;
  flipped.semantic = in.semantic.flip({1});
  flipped.semantic_cls = in.semantic_cls.flip({1});
  flipped.motion = in.motion.flip({2});
  torch::NoGradGuard no_grad;
  auto a = model->features(in), b = model->features(flipped);
  // Without position embeddings the two would agree to rounding (~1e-7): attention and pooling
  // are permutation-invariant.
  EXPECT_GT(((a - b).norm() / a.norm()).item<double>(), 1e-4);
}

TEST(FusionModel, Bf16ComputeIsCloseAndTrainsFp32Masters) {
  auto model = FusionModel(gradcheck_config());
  model->eval();
  auto in = gradcheck_input(torch::kFloat);
  auto ref = model->forward(in).detach();
  model->set_compute_dtype(torch::kBFloat16);
  auto out = model->forward(in);
  EXPECT_EQ(out.scalar_type(), torch::kFloat);
  const double rel = ((out - ref).norm() / ref.norm()).item<double>();
  EXPECT_LT(rel, 3e-2);
  EXPECT_GT(rel, 0.0);  // it really ran in reduced precision
  out.sum().backward();
  auto w = model->named_parameters()["layers.0.sem_attn.q_proj.weight"];
  ASSERT_TRUE(w.grad().defined());
  EXPECT_EQ(w.grad().scalar_type(), torch::kFloat);
}

TEST(FusionModel, MismatchedInputsGiveClearErrors) {
  auto c = gradcheck_config();
  auto model = FusionModel(c);
  auto expect_error = [&](FusionInput in, const std::string& fragment) {
    try {
      model->forward(in);
      ADD_FAILURE() << "no error; expected one containing: " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  auto in = gradcheck_input(torch::kFloat);
  auto bad = in;
  bad.semantic = torch::randn({2, 3, 3, 3, 7});
  expect_error(bad, "semantic features have 7 channels, the config expects semantic_dim 6");
  bad = in;
  bad.motion = torch::randn({2, 4, 3, 2, 1});
  expect_error(bad, "motion features have 4 channels, the config expects motion_dim 5");
  bad = in;
  bad.semantic_cls = torch::Tensor();
  expect_error(bad, "use_cls = true but the input has no semantic CLS tokens");
  bad = in;
  bad.motion = torch::randn({3, 5, 3, 2, 1});
  expect_error(bad, "batch sizes differ");
  bad = in;
  bad.semantic = torch::randn({2, 3, 9, 6});
  expect_error(bad, "semantic features must be [B, T, h, w, C]");
}

TEST(FusionConfig, JsonRoundTrip) {
  auto c = gradcheck_config();
  c.arch = FusionArch::kLate;
  c.attn_dropout = 0.25;
  auto j = models::to_json(c);
  auto back = models::fusion_config_from_json(j, "test");
  EXPECT_EQ(models::to_json(back), j);
  EXPECT_EQ(back.arch, FusionArch::kLate);
  EXPECT_EQ(back.semantic_grid, c.semantic_grid);
  // Missing keys take the defaults.
  EXPECT_EQ(models::to_json(models::fusion_config_from_json(nlohmann::json::object(), "test")),
            models::to_json(FusionConfig{}));
}

TEST(FusionConfig, BadConfigsGiveClearErrors) {
  auto expect_error = [](const nlohmann::json& j, const std::string& fragment) {
    try {
      models::fusion_config_from_json(j, "model.json");
      ADD_FAILURE() << "no error for " << j.dump();
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("model.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
    }
  };
  expect_error({{"widht", 256}}, "unknown key \"widht\"");
  expect_error({{"width", 100}, {"heads", 8}}, "width (100) must be divisible by heads (8)");
  expect_error({{"width", "big"}}, "\"width\" must be an integer");
  expect_error({{"depth", 0}}, "depth >= 1");
  expect_error({{"arch", "early"}}, "arch \"early\" is not one of");
  expect_error({{"num_classes", 1}}, "num_classes must be >= 2");
  expect_error({{"dropout", 1.5}}, "dropout must be in [0, 1)");
  expect_error({{"semantic_grid", {16, 14}}}, "\"semantic_grid\" must be an array of 3 integers");
  expect_error({{"semantic_pool", 0}}, "semantic_pool must be >= 1");
  expect_error(nlohmann::json::array(), "expected a JSON object");
  // The constructor validates too.
  FusionConfig c;
  c.heads = 0;
  EXPECT_THROW(FusionModel{c}, Error);
}

TEST(FusionConfig, CostMatchesHandCount) {
  FusionConfig c;
  c.arch = FusionArch::kSemantic;
  c.semantic_dim = 10;
  c.semantic_pool = 1;
  c.use_cls = false;
  c.width = 4;
  c.heads = 2;
  c.mlp_ratio = 2;
  c.pool_queries = 1;
  c.num_classes = 3;
  // 6 tokens of 10 -> 4; pooler: 1 query over 6 tokens; FFN 4 -> 8 -> 4; head 4 -> 3.
  const double proj = 2.0 * 6 * 10 * 4;
  const double attn = 2.0 * 1 * 4 * 4 * 2 + 2.0 * 6 * 4 * 4 * 2 + 2.0 * 1 * 6 * 4 * 2;
  const double ffn = 2.0 * 1 * 4 * 8 * 2;
  const double head = 2.0 * 4 * 3;
  auto cost = models::fusion_forward_cost(c, {1, 2, 3}, {1, 1, 1}, false);
  EXPECT_EQ(cost.semantic_tokens, 6);
  EXPECT_DOUBLE_EQ(cost.flops, proj + attn + ffn + head);
  // Each fusion layer adds the same amount.
  FusionConfig f;
  auto c1 = models::fusion_forward_cost(f, f.semantic_grid, f.motion_grid, true);
  f.depth += 1;
  auto c2 = models::fusion_forward_cost(f, f.semantic_grid, f.motion_grid, true);
  f.depth += 1;
  auto c3 = models::fusion_forward_cost(f, f.semantic_grid, f.motion_grid, true);
  EXPECT_DOUBLE_EQ(c3.flops - c2.flops, c2.flops - c1.flops);
  EXPECT_EQ(c1.semantic_tokens, 16 * 7 * 7 + 16);
  EXPECT_EQ(c1.motion_tokens, 8 * 7 * 7);
}
