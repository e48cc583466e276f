// `vidfuse bench dinov3 [--json]`: DINOv3 images/s at the real shape, against the GEMM ceiling
// measured in the same run.

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <nlohmann/json.hpp>

#include "command.h"
#include "dtype_option.h"
#include "profile_option.h"
#include "vidfuse/core/cpu_peak.h"
#include "vidfuse/core/device.h"
#include "vidfuse/core/gemm_ceiling.h"
#include "vidfuse/core/linear.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/models/attention.h"
#include "vidfuse/models/cpu_kernels.h"
#include "vidfuse/models/dinov3.h"

namespace vidfuse::cli {
namespace {

struct Dinov3BenchArgs {
  std::string variant = "vitb16", dtype = "both", device = "auto", weights, profile;
  int64_t batch = 8, size = 224, iters = 3;
  bool json = false, ab = false, parts = false, kernels_only = false;
};

// Forward FLOPs per image: every matmul (2 per multiply-add) and the patch embedding.
double dinov3_gflop_per_image(const models::DinoV3Config& c, int64_t size) {
  const double p = (size / c.patch_size) * (size / c.patch_size);
  const double n = 1 + c.num_register_tokens + p, d = c.hidden_size, m = c.intermediate_size;
  const double mlp = (c.use_gated_mlp ? 3 : 2) * n * d * m;
  const double per_layer = 4 * n * d * d + 2 * n * n * d + mlp;
  const double patch = p * d * c.num_channels * c.patch_size * c.patch_size;
  return 2 * (c.num_hidden_layers * per_layer + patch) / 1e9;
}

// Times each of `variants` alternately `iters` times (after one warm-up each); best and median s.
template <typename F>
std::vector<std::pair<double, double>> time_alternately(size_t variants, int64_t iters,
                                                        const F& run) {
  std::vector<std::vector<double>> times(variants);
  for (size_t v = 0; v < variants; ++v) run(v);
  for (int64_t i = 0; i < iters; ++i)
    for (size_t v = 0; v < variants; ++v) {
      const auto t0 = std::chrono::steady_clock::now();
      run(v);
      times[v].push_back(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  std::vector<std::pair<double, double>> out;
  for (auto& t : times) {
    std::sort(t.begin(), t.end());
    out.emplace_back(t.front(), t[t.size() / 2]);
  }
  return out;
}

// The model's linear layers alone, at its shapes (rows = batch x tokens) and with its epilogues,
// on the GEMM kernel of its kernel set, each timed for at least 0.3 s after a warm-up: how close
// the GEMMs themselves come to the CPU's peak, beside the whole model's share. Empty for the torch
// set.
nlohmann::json measure_layer_rates(const models::DinoV3ViT& model, int64_t rows,
                                   torch::ScalarType dtype) {
  const models::DinoV3Kernels set = model->kernels();
  if (set == models::DinoV3Kernels::Torch) return nlohmann::json::object();
  const GemmKernel kernel = models::dinov3_gemm_kernel(set);
  const models::DinoV3Config& c = model->config();
  const int64_t d = c.hidden_size, m = c.intermediate_size;
  using onednn::Act;
  using onednn::Epilogue;
  struct Layer {
    const char* name;
    int64_t n, k;
    Act act;
    Epilogue epilogue;
  };
  // The plain MLP's layers (a gated MLP's gate projection is the up projection's shape).
  const Layer layers[] = {{"qkv", 3 * d, d, Act::None, Epilogue::Store},
                          {"o", d, d, Act::None, Epilogue::Accumulate},
                          {"up", m, d, models::dinov3_mlp_act(c), Epilogue::Store},
                          {"down", d, m, Act::None, Epilogue::Accumulate}};
  nlohmann::json out = nlohmann::json::object();
  double flop_total = 0, seconds_total = 0;
  for (const Layer& l : layers) {
    const auto options = torch::TensorOptions().dtype(dtype);
    const FusedLinear lin(torch::randn({l.n, l.k}, options) / std::sqrt(double(l.k)),
                          torch::randn({l.n}, options), l.act, l.epilogue, kernel);
    const torch::Tensor x = torch::randn({rows, l.k}, options);
    torch::Tensor y = torch::randn({rows, l.n}, options);
    auto run = [&] {
      if (l.epilogue == Epilogue::Accumulate)
        lin.accumulate(x, y);
      else
        y = lin(x);
    };
    run();
    double best = 1e30, spent = 0;
    while (spent < 0.3) {
      const auto t0 = std::chrono::steady_clock::now();
      run();
      const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, t);
      spent += t;
    }
    const double flop = 2.0 * rows * l.n * l.k;
    out[l.name] = flop / best / 1e9;
    flop_total += flop;
    seconds_total += best;
  }
  out["all"] = flop_total / seconds_total / 1e9;  // the four in the model's proportions
  return out;
}

// `--ab`: the fused path on each kernel set this machine has (VIDFUSE_DINOV3_KERNELS=torch, onednn,
// vidfuse), one model of the same weights each, timed alternately in one process so that a busy
// machine's noise falls on all alike.
int run_dinov3_ab(const Dinov3BenchArgs& a) {
  std::vector<std::string> dtypes = a.dtype == "both" ? std::vector<std::string>{"fp32", "bf16"}
                                                      : std::vector<std::string>{a.dtype};
  for (const auto& name : dtypes) {
    const torch::ScalarType dtype = parse_compute_dtype(name, a.device);
    const torch::Device device(a.device);
    std::vector<std::string> sets = {"torch"};
    if (gemm_kernel_available(GemmKernel::Onednn, dtype, device)) sets.push_back("onednn");
    if (gemm_kernel_available(GemmKernel::Vidfuse, dtype, device)) sets.push_back("vidfuse");
    std::vector<models::DinoV3ViT> models;
    for (const auto& set : sets) {
      torch::manual_seed(0);
      models::DinoV3ViT m(models::DinoV3Config::preset(a.variant));
      m->to(device, dtype);
      m->eval();
      ::setenv("VIDFUSE_DINOV3_KERNELS", set.c_str(), 1);
      m->fuse_for_inference();
      models.push_back(m);
    }
    ::unsetenv("VIDFUSE_DINOV3_KERNELS");
    torch::Tensor x = torch::randn({a.batch, 3, a.size, a.size}).to(device, dtype);
    torch::InferenceMode guard;
    std::vector<torch::Tensor> pooled(sets.size());
    const auto times = time_alternately(sets.size(), a.iters, [&](size_t s) {
      pooled[s] = models[s]->forward(x).pooler_output.to(torch::kFloat32);
      pooled[s].sum().item<double>();  // waits for an asynchronous device
    });
    const double gflop = dinov3_gflop_per_image(models[0]->config(), a.size);
    nlohmann::json r = {{"bench", "dinov3-ab"},
                        {"dtype", name},
                        {"batch", a.batch},
                        {"size", a.size},
                        {"threads", torch::get_num_threads()},
                        {"onednn", onednn::version()},
                        {"cpu_isa", cpu_isa()}};
    std::string text = "dinov3 " + name + " A/B, " + std::to_string(torch::get_num_threads()) +
                       " threads, " + std::to_string(a.iters) + " alternated forwards each:";
    const double torch_best = a.batch / times[0].first, torch_median = a.batch / times[0].second;
    for (size_t s = 0; s < sets.size(); ++s) {
      const double best = a.batch / times[s].first, median = a.batch / times[s].second;
      const double diff =
          s == 0 ? 0.0 : ((pooled[s] - pooled[0]).norm() / pooled[0].norm()).item<double>();
      r[sets[s] + "_images_per_s"] = best;
      r[sets[s] + "_images_per_s_median"] = median;
      char line[200];
      if (s == 0) {
        std::snprintf(line, sizeof line, " torch %.2f img/s (median %.2f, %.1f GFLOP/s)", best,
                      median, best * gflop);
      } else {
        r[sets[s] + "_over_torch"] = best / torch_best;
        r[sets[s] + "_over_torch_median"] = median / torch_median;
        r[sets[s] + "_rel_diff"] = diff;
        std::snprintf(line, sizeof line,
                      "; %s %.2f (median %.2f, %.1f GFLOP/s): %.3fx torch (median %.3f), "
                      "outputs differ by %.1e",
                      sets[s].c_str(), best, median, best * gflop, best / torch_best,
                      median / torch_median, diff);
      }
      text += line;
    }
    if (a.json)
      std::cout << r.dump() << std::endl;
    else
      std::cout << text << std::endl;
  }
  return 0;
}

// `--parts`: the choices of the inference path's non-GEMM parts, each timed alternately in one
// process (so a busy machine's noise falls on all alike): attention (per-head, SDPA, fused) at the
// model's [B, H, N, D] with its layouts (q contiguous, v a slice of the q|k|v rows), LayerNorm
// (torch, rows) at [B*N, C], then the whole forward under each attention x LayerNorm choice.
int run_dinov3_parts(const Dinov3BenchArgs& a) {
  using models::AttentionKernel;
  std::vector<std::string> dtypes = a.dtype == "both" ? std::vector<std::string>{"fp32", "bf16"}
                                                      : std::vector<std::string>{a.dtype};
  const models::DinoV3Config c = models::DinoV3Config::preset(a.variant);
  const int64_t grid = a.size / c.patch_size, n = 1 + c.num_register_tokens + grid * grid;
  const int64_t heads = c.num_attention_heads, hd = c.head_dim();
  const models::AttentionKernel saved_kernel = models::attention_kernel();
  auto print = [&](const nlohmann::json& r, const std::string& text) {
    if (a.json)
      std::cout << r.dump() << std::endl;
    else
      std::cout << text << std::endl;
  };
  auto line = [](const std::vector<std::string>& names,
                 const std::vector<std::pair<double, double>>& t, double unit, const char* what) {
    std::string s;
    char buf[200];
    for (size_t i = 0; i < names.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%s%s %.2f %s (median %.2f; /%s best %.3f median %.3f)",
                    i ? ", " : "", names[i].c_str(), t[i].first * unit, what, t[i].second * unit,
                    names[0].c_str(), t[0].first / t[i].first, t[0].second / t[i].second);
      s += buf;
    }
    return s;
  };
  for (const auto& name : dtypes) {
    const torch::ScalarType dtype = parse_compute_dtype(name, a.device);
    torch::InferenceMode guard;
    torch::manual_seed(0);
    // Attention alone.
    const torch::Tensor q = (torch::randn({a.batch, heads, n, hd}) * std::pow(hd, -0.5)).to(dtype);
    const torch::Tensor k = torch::randn({a.batch, heads, n, hd}).to(dtype);
    const torch::Tensor qkv = torch::randn({a.batch, n, 3, heads, hd}).to(dtype);
    const torch::Tensor v = qkv.select(2, 2).transpose(1, 2);
    const std::vector<AttentionKernel> kernels = {AttentionKernel::PerHead, AttentionKernel::Sdpa,
                                                  AttentionKernel::Fused};
    const std::vector<std::string> kernel_names = {"per-head", "sdpa", "fused"};
    const bool fused_ok = models::fused_attention_supports(q, k, v);
    const size_t nk = fused_ok ? 3 : 2;
    std::vector<torch::Tensor> outs(nk);
    auto ta = time_alternately(nk, a.iters, [&](size_t i) {
      models::set_attention_kernel(kernels[i]);
      outs[i] = models::attention(q, k, v, 1.0);
    });
    std::vector<double> diffs;
    for (size_t i = 0; i < nk; ++i)
      diffs.push_back(((outs[i].to(torch::kFloat32) - outs[0].to(torch::kFloat32)).norm() /
                       outs[0].to(torch::kFloat32).norm())
                          .item<double>());
    nlohmann::json ra = {{"bench", "dinov3-parts-attention"},
                         {"dtype", name},
                         {"shape", {a.batch, heads, n, hd}},
                         {"threads", torch::get_num_threads()},
                         {"cpu_isa", cpu_isa()}};
    for (size_t i = 0; i < nk; ++i) {
      ra[kernel_names[i] + "_ms"] = ta[i].first * 1e3;
      ra[kernel_names[i] + "_ms_median"] = ta[i].second * 1e3;
      ra[kernel_names[i] + "_rel_diff"] = diffs[i];
    }
    print(ra, "attention " + name + " [" + std::to_string(a.batch) + ", " + std::to_string(heads) +
                  ", " + std::to_string(n) + ", " + std::to_string(hd) + "], " +
                  std::to_string(torch::get_num_threads()) + " threads: " +
                  line(std::vector<std::string>(kernel_names.begin(), kernel_names.begin() + nk),
                       ta, 1e3, "ms") +
                  (fused_ok ? "; fused differs by " + std::to_string(diffs[2]) : ""));
    // LayerNorm alone.
    const torch::Tensor x = (torch::randn({a.batch * n, c.hidden_size}) * 3 + 1).to(dtype);
    const torch::Tensor w = torch::randn({c.hidden_size}).to(dtype);
    const torch::Tensor b = torch::randn({c.hidden_size}).to(dtype);
    const bool rows_ok = models::rows_layer_norm_supports(x, w, b);
    if (rows_ok) {
      auto tl = time_alternately(2, a.iters * 4, [&](size_t i) {
        if (i == 0)
          torch::layer_norm(x, {c.hidden_size}, w, b, 1e-6);
        else
          models::rows_layer_norm(x, w, b, 1e-6);
      });
      nlohmann::json rl = {{"bench", "dinov3-parts-layernorm"},
                           {"dtype", name},
                           {"rows", x.size(0)},
                           {"cols", x.size(1)},
                           {"torch_ms", tl[0].first * 1e3},
                           {"rows_ms", tl[1].first * 1e3},
                           {"torch_ms_median", tl[0].second * 1e3},
                           {"rows_ms_median", tl[1].second * 1e3}};
      print(rl, "layernorm " + name + " [" + std::to_string(x.size(0)) + ", " +
                    std::to_string(x.size(1)) + "]: " + line({"torch", "rows"}, tl, 1e3, "ms"));
    }
    if (a.kernels_only) continue;
    // The whole forward under each choice (the kernel set of this CPU's default).
    torch::manual_seed(0);
    models::DinoV3ViT m(c);
    m->to(torch::Device(a.device), dtype);
    m->eval();
    m->fuse_for_inference();
    const torch::Tensor img =
        torch::randn({a.batch, 3, a.size, a.size}).to(torch::Device(a.device), dtype);
    struct Choice {
      std::string name;
      AttentionKernel attn;
      const char *ln, *rope = "pass";
    };
    std::vector<Choice> choices = {{"per-head+torch-ln", AttentionKernel::PerHead, "torch"},
                                   {"sdpa+torch-ln", AttentionKernel::Sdpa, "torch"}};
    if (fused_ok) choices.push_back({"fused+torch-ln", AttentionKernel::Fused, "torch"});
    if (rows_ok) choices.push_back({"per-head+rows-ln", AttentionKernel::PerHead, "rows"});
    if (fused_ok && rows_ok) {
      choices.push_back(
          {"fused+rows-ln+rope-in-attention", AttentionKernel::Fused, "rows", "attention"});
      choices.push_back({"fused+rows-ln", AttentionKernel::Fused, "rows"});
    }
    std::vector<torch::Tensor> pooled(choices.size());
    auto tm = time_alternately(choices.size(), a.iters, [&](size_t i) {
      models::set_attention_kernel(choices[i].attn);
      ::setenv("VIDFUSE_LAYERNORM", choices[i].ln, 1);
      ::setenv("VIDFUSE_ROPE", choices[i].rope, 1);
      pooled[i] = m->forward(img).pooler_output.to(torch::kFloat32);
    });
    ::unsetenv("VIDFUSE_LAYERNORM");
    ::unsetenv("VIDFUSE_ROPE");
    std::vector<std::string> names;
    nlohmann::json rm = {{"bench", "dinov3-parts-forward"},
                         {"dtype", name},
                         {"batch", a.batch},
                         {"size", a.size},
                         {"threads", torch::get_num_threads()},
                         {"kernels", models::dinov3_kernels_name(m->kernels())}};
    for (size_t i = 0; i < choices.size(); ++i) {
      names.push_back(choices[i].name);
      rm[choices[i].name + "_images_per_s"] = a.batch / tm[i].first;
      rm[choices[i].name + "_images_per_s_median"] = a.batch / tm[i].second;
      rm[choices[i].name + "_rel_diff"] =
          ((pooled[i] - pooled[0]).norm() / pooled[0].norm()).item<double>();
    }
    print(rm, "forward " + name + " (" + models::dinov3_kernels_name(m->kernels()) + " set), " +
                  std::to_string(torch::get_num_threads()) +
                  " threads: " + line(names, tm, 1.0, "s"));
  }
  models::set_attention_kernel(saved_kernel);
  return 0;
}

int run_dinov3_bench(Dinov3BenchArgs a) {
  a.device = announce_device(a.device, "bench dinov3");
  if (a.ab) return run_dinov3_ab(a);
  if (a.parts) return run_dinov3_parts(a);
  std::vector<std::string> dtypes = a.dtype == "both" ? std::vector<std::string>{"fp32", "bf16"}
                                                      : std::vector<std::string>{a.dtype};
  for (const auto& name : dtypes) {
    const torch::ScalarType dtype = parse_compute_dtype(name, a.device);
    torch::manual_seed(0);
    models::DinoV3ViT model = a.weights.empty()
                                  ? models::DinoV3ViT(models::DinoV3Config::preset(a.variant))
                                  : models::load_dinov3(a.weights, dtype);
    // The figure the issue and the literature quote (35.9 for ViT-B/16 at 224) next to our count.
    const double gflop = dinov3_gflop_per_image(model->config(), a.size);
    const torch::Device device(a.device);
    model->to(device, dtype);
    model->eval();
    model->fuse_for_inference();
    torch::Tensor x = torch::randn({a.batch, 3, a.size, a.size}).to(device, dtype);
    torch::InferenceMode guard;
    // Reading one element waits for an asynchronous device to finish.
    auto forward = [&] { model->forward(x).pooler_output.sum().item<double>(); };
    forward();  // warm-up: oneDNN primitive creation, allocator
    profile_once(profile_path_for(a.profile, name, dtypes.size() > 1), forward);
    std::vector<double> times;
    for (int64_t i = 0; i < a.iters; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      forward();
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(times.begin(), times.end());
    const double best = times.front(), median = times[times.size() / 2];
    const double images_per_s = a.batch / best;
    const double model_gflops = images_per_s * gflop;
    const double gemm = measure_gemm_gflops(dtype, device);
    // The rate the model's linear layers actually get (oneDNN on the CPU): the tighter ceiling.
    const double linear = measure_linear_gflops(dtype, device);
    // The CPU's own peak (its measured clock times its widest FMA's measured rate): how much of
    // the machine the GEMMs and the model reach, not only how they compare with each other.
    const CpuPeak peak =
        device.is_cpu() ? measure_cpu_peak(name, torch::get_num_threads()) : CpuPeak{};
    const int64_t tokens =
        1 + model->config().num_register_tokens +
        (a.size / model->config().patch_size) * (a.size / model->config().patch_size);
    nlohmann::json layers = device.is_cpu() ? measure_layer_rates(model, a.batch * tokens, dtype)
                                            : nlohmann::json::object();
    auto of_peak = [&](double gflops) -> nlohmann::json {
      if (peak.gflops <= 0) return nullptr;
      return gflops / peak.gflops;
    };
    nlohmann::json r = {
        {"bench", "dinov3"},
        {"variant", a.weights.empty() ? a.variant : a.weights},
        {"device", a.device},
        {"dtype", name},
        {"kernels", models::dinov3_kernels_name(model->kernels())},
        {"onednn", onednn::version()},
        {"batch", a.batch},
        {"size", a.size},
        {"threads", torch::get_num_threads()},
        {"parallel_for_threads", parallel_for_threads()},
        {"images_per_s", images_per_s},
        {"seconds_per_batch", best},
        {"seconds_per_batch_median", median},
        {"images_per_s_median", a.batch / median},
        {"gflop_per_image", gflop},
        {"model_gflops", model_gflops},
        {"gemm_gflops", gemm},
        {"ratio_to_gemm", model_gflops / gemm},
        {"linear_gflops", linear},
        {"ratio_to_linear", model_gflops / linear},
        {"cpu_peak",
         {{"instruction", peak.instruction},
          {"clock_ghz", peak.clock_ghz},
          {"gflops", peak.gflops},
          {"flop_per_cycle_per_core", peak.flop_per_cycle}}},
        {"model_of_peak", of_peak(model_gflops)},
        {"gemm_of_peak", of_peak(gemm)},
        {"linear_of_peak", of_peak(linear)},
        {"layer_gflops", layers},
        {"layers_of_peak",
         layers.contains("all") ? of_peak(layers["all"].get<double>()) : nlohmann::json(nullptr)},
        {"peak_rss_gb", peak_rss_gb()},
        {"blas", loaded_blas_library()},
        {"cpu_isa", cpu_isa()},
        {"libtorch", TORCH_VERSION}};
    if (a.json) {
      std::cout << r.dump() << std::endl;
    } else {
      std::printf(
          "dinov3 %s %s (%s kernels) batch %ld @%ld: %.2f img/s (median %.2f), %.1f GFLOP/s model "
          "vs %.1f GFLOP/s GEMM (ratio %.2f) and %.1f GFLOP/s oneDNN linear (ratio %.2f), peak "
          "RSS %.2f GB\n",
          (a.weights.empty() ? a.variant : a.weights).c_str(), name.c_str(),
          models::dinov3_kernels_name(model->kernels()), (long)a.batch, (long)a.size, images_per_s,
          a.batch / median, model_gflops, gemm, model_gflops / gemm, linear, model_gflops / linear,
          peak_rss_gb());
      if (peak.gflops > 0)
        std::printf(
            "  CPU peak %.1f GFLOP/s (%s, %.1f FLOP/cycle/core at %.2f GHz measured, %d threads): "
            "model %.0f %%, GEMM %.0f %%, oneDNN linear %.0f %% of it\n",
            peak.gflops, peak.instruction.c_str(), peak.flop_per_cycle, peak.clock_ghz,
            peak.threads, 100 * model_gflops / peak.gflops, 100 * gemm / peak.gflops,
            100 * linear / peak.gflops);
      if (peak.gflops > 0 && layers.contains("all"))
        std::printf(
            "  the model's linear layers alone (%s GEMM, %ld rows): qkv %.1f, o %.1f, up+act "
            "%.1f, "
            "down %.1f GFLOP/s; all four %.1f = %.0f %% of peak\n",
            models::dinov3_kernels_name(model->kernels()), (long)(a.batch * tokens),
            layers["qkv"].get<double>(), layers["o"].get<double>(), layers["up"].get<double>(),
            layers["down"].get<double>(), layers["all"].get<double>(),
            100 * layers["all"].get<double>() / peak.gflops);
    }
  }
  return 0;
}

VIDFUSE_BENCH(
    "dinov3",
    "DINOv3 images/s (random weights of the real shape, or --weights) vs the GEMM ceiling",
    [](CLI::App& sub) {
      auto a = std::make_shared<Dinov3BenchArgs>();
      sub.add_flag("--json", a->json, "One JSON object per line");
      sub.add_flag("--ab", a->ab,
                   "Every kernel set this machine has (torch, onednn, vidfuse) timed alternately "
                   "in one process; random "
                   "weights");
      sub.add_flag("--parts", a->parts,
                   "The inference path's attention (per-head, sdpa, fused) and LayerNorm (torch, "
                   "rows) kernels, alone and in the whole forward, timed alternately in one "
                   "process; random weights");
      sub.add_flag("--kernels-only", a->kernels_only,
                   "With --parts: the attention and LayerNorm kernels alone, not the forward");
      sub.add_option("--variant", a->variant, "vits16|vitb16|vitl16|...")->capture_default_str();
      sub.add_option("--weights", a->weights,
                     "A DINOv3 checkpoint or HF directory instead of random weights (the same "
                     "weights a peer runs)");
      sub.add_option("--dtype", a->dtype, "fp32, bf16 or both")->capture_default_str();
      sub.add_option("--batch", a->batch)->capture_default_str();
      sub.add_option("--device", a->device, "auto (a GPU when there is one), cpu, cuda, cuda:N")
          ->capture_default_str();
      sub.add_option("--size", a->size, "Square input size")->capture_default_str();
      sub.add_option("--iters", a->iters, "Timed iterations (best is reported)")
          ->capture_default_str();
      sub.add_option("--profile", a->profile,
                     "Also write one forward's Chrome trace here (-fp32/-bf16 added for both)");
      return [a] { return run_dinov3_bench(*a); };
    });

}  // namespace
}  // namespace vidfuse::cli
