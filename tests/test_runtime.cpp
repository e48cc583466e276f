#include <ATen/Parallel.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <fstream>
#include <optional>

#include "test_util.h"
#include "vidfuse/core/cpu_peak.h"
#include "vidfuse/core/device_stager.h"
#include "vidfuse/core/runtime.h"
#include "vidfuse/models/attention.h"

namespace {

using vidfuse::test::EnvScope;

TEST(Runtime, ParallelForRunsOnEveryThread) {
  // Built without OpenMP, ATen's header-only parallel_for runs serially and per-head attention
  // leaves all but one core idle.
  vidfuse::test::ThreadCountScope threads(2);
  EXPECT_EQ(vidfuse::parallel_for_threads(), 2);
}

TEST(Runtime, PerHeadAttentionWritesInferenceTensorsFromWorkerThreads) {
  // Worker threads must take the caller's inference mode to write into its inference tensors.
  vidfuse::test::ThreadCountScope threads(2);
  torch::manual_seed(0);
  torch::InferenceMode guard;
  auto q = torch::randn({2, 4, 33, 16}), k = torch::randn({2, 4, 40, 16}),
       v = torch::randn({2, 4, 40, 16});
  auto out = vidfuse::models::attention(q, k, v, 0.25);
  auto ref = torch::matmul(torch::softmax(torch::matmul(q, k.transpose(-2, -1)) * 0.25, -1), v)
                 .transpose(1, 2)
                 .reshape({2, 33, 64});
  EXPECT_TRUE(torch::allclose(out, ref, 1e-5, 1e-6));
}

torch::Tensor reference_attention(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, double scale) {
  auto p = torch::softmax(torch::matmul(q, k.transpose(-2, -1)).to(torch::kFloat32) * scale, -1);
  return torch::matmul(p.to(q.scalar_type()), v)
      .transpose(1, 2)
      .reshape({q.size(0), q.size(2), -1});
}

TEST(Attention, BothKernelsMatchTheReferenceForwardAndBackward) {
  vidfuse::test::ThreadCountScope threads(2);
  for (const auto kernel : vidfuse::test::kBothKernels) {
    SCOPED_TRACE(vidfuse::test::kernel_name(kernel));
    vidfuse::test::AttentionKernelScope use(kernel);
    for (const auto dtype : {torch::kFloat32, torch::kBFloat16}) {
      torch::manual_seed(1);
      // Non-contiguous q (a view of a projected [B, N, H, D] tensor), as the models pass it.
      auto q = torch::randn({2, 9, 3, 16}).to(dtype).permute({0, 2, 1, 3}).requires_grad_(false);
      auto k = torch::randn({2, 3, 12, 16}).to(dtype), v = torch::randn({2, 3, 12, 16}).to(dtype);
      std::vector<torch::Tensor> leaves{q.detach().clone().requires_grad_(true),
                                        k.clone().requires_grad_(true),
                                        v.clone().requires_grad_(true)};
      auto ref_leaves = leaves;
      for (auto& t : ref_leaves) t = t.detach().to(torch::kFloat64).requires_grad_(true);
      auto out = vidfuse::models::attention(leaves[0], leaves[1], leaves[2], 0.25);
      auto ref = reference_attention(ref_leaves[0], ref_leaves[1], ref_leaves[2], 0.25);
      auto w = torch::randn(out.sizes(), torch::kFloat64);
      (out.to(torch::kFloat64) * w).sum().backward();
      (ref * w).sum().backward();
      const double tol = dtype == torch::kFloat32 ? 1e-5 : 3e-2;
      EXPECT_LE(vidfuse::test::rel_error(out.to(torch::kFloat64), ref), tol);
      for (int i = 0; i < 3; ++i)
        EXPECT_LE(
            vidfuse::test::rel_error(leaves[i].grad().to(torch::kFloat64), ref_leaves[i].grad()),
            tol)
            << "gradient of input " << i << " " << c10::toString(dtype);
    }
  }
}

TEST(DeviceStager, UploadsArriveIntactInTheAskedDtype) {
  std::vector<torch::Device> devices{torch::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(torch::kCUDA);  // gpu-check.sh
  for (const auto& device : devices) {
    SCOPED_TRACE(device.str());
    vidfuse::DeviceStager stager(device);
    EXPECT_EQ(stager.asynchronous(), device.is_cuda());
    auto host = stager.host_buffer({4, 3, 8, 8}, torch::kFloat32);
    EXPECT_EQ(host.is_pinned(), device.is_cuda());
    host.copy_(torch::randn({4, 3, 8, 8}));
    std::vector<vidfuse::DeviceStager::Upload> ups;
    for (int i = 0; i < 4; ++i) ups.push_back(stager.upload(host[i], torch::kBFloat16));
    for (int i = 0; i < 4; ++i) {
      auto t = stager.ready(ups[i]);
      EXPECT_EQ(t.device().type(), device.type());
      EXPECT_EQ(t.scalar_type(), torch::kBFloat16);
      EXPECT_TRUE(torch::equal(t.cpu(), host[i].to(torch::kBFloat16)));
    }
  }
}

TEST(Attention, KernelNamesAreCheckedAndSettable) {
  using vidfuse::models::AttentionKernel;
  EXPECT_EQ(vidfuse::models::attention_kernel_from_name("sdpa"), AttentionKernel::Sdpa);
  EXPECT_EQ(vidfuse::models::attention_kernel_from_name("per-head"), AttentionKernel::PerHead);
  EXPECT_THROW_WITH(vidfuse::models::attention_kernel_from_name("flash"), "'flash'", "sdpa",
                    "per-head");
}

// The cpuid vendor check (it picks the linear layers' kernel) agrees with the kernel's reading.
TEST(Runtime, CpuVendorMatchesProcCpuinfo) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, vendor;
  while (vendor.empty() && std::getline(cpuinfo, line))
    if (line.rfind("vendor_id", 0) == 0) vendor = line.substr(line.find(':') + 2);
  if (vendor.empty()) GTEST_SKIP() << "no vendor_id in /proc/cpuinfo (not x86)";
  EXPECT_EQ(vidfuse::cpu_is_intel(), vendor == "GenuineIntel") << vendor;
}

// The peak benchmarks divide by: the instruction follows the CPU's flags from /proc/cpuinfo, and
// the figures are consistent (FLOP/cycle is the rate over clock times threads). No timing bounds:
// a busy machine slows both loops.
TEST(Runtime, CpuPeakTimesTheWidestFmaThisCpuHas) {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, flags;
  while (flags.empty() && std::getline(cpuinfo, line))
    if (line.rfind("flags", 0) == 0) flags = " " + line.substr(line.find(':') + 2) + " ";
  if (flags.empty()) GTEST_SKIP() << "no flags in /proc/cpuinfo (not x86)";
  auto has = [&](const char* f) {
    return flags.find(" " + std::string(f) + " ") != std::string::npos;
  };
  const vidfuse::CpuPeak fp32 = vidfuse::measure_cpu_peak("fp32", 1);
  if (has("avx512f")) {
    EXPECT_EQ(fp32.instruction, "vfmadd231ps zmm");
  } else if (has("avx2") && has("fma")) {
    EXPECT_EQ(fp32.instruction, "vfmadd231ps ymm");
  }
  const vidfuse::CpuPeak bf16 = vidfuse::measure_cpu_peak("bf16", 1);
  EXPECT_EQ(bf16.instruction, has("avx512_bf16") ? "vdpbf16ps zmm" : "");
  for (const auto& p : {fp32, bf16}) {
    if (p.instruction.empty()) continue;
    EXPECT_GT(p.clock_ghz, 0.0) << p.instruction;
    EXPECT_GT(p.gflops, 0.0) << p.instruction;
    EXPECT_NEAR(p.flop_per_cycle, p.gflops / p.clock_ghz, 1e-9 * p.flop_per_cycle);
  }
}

TEST(Runtime, Bf16OnACpuWithoutNativeBf16IsWarnedAboutWithTheFp32Alternative) {
  {
    EnvScope no_bf16("VIDFUSE_CPU_BF16", "0");  // as on an AVX2-only CPU (AMD Zen 3)
    EXPECT_FALSE(vidfuse::cpu_has_native_bf16());
    const std::string w = vidfuse::bf16_compute_warning("cpu");
    EXPECT_NE(w.find("no native bf16"), std::string::npos) << w;
    EXPECT_NE(w.find("90x slower"), std::string::npos) << w;
    EXPECT_NE(w.find("--dtype fp32"), std::string::npos) << w;
    EXPECT_NE(w.find(vidfuse::cpu_isa()), std::string::npos) << w;
    EXPECT_EQ(vidfuse::bf16_compute_warning("cuda:0"), "");  // GPUs have bf16
  }
  {
    EnvScope bf16("VIDFUSE_CPU_BF16", "1");  // Zen 4, Sapphire Rapids
    EXPECT_EQ(vidfuse::bf16_compute_warning("cpu"), "");
  }
  EXPECT_FALSE(vidfuse::cpu_isa().empty());
}

TEST(Runtime, Bf16WarningReachesTheCommandLine) {
  // `vidfuse bench attention --dtype bf16` on a CPU without native bf16 says so on stderr and still
  // runs.
  vidfuse::test::ScratchDir dir;
  const std::string err = (dir.path() / "err.txt").string();
  const std::string cmd =
      std::string("VIDFUSE_CPU_BF16=0 ") + VIDFUSE_CLI +
      " bench attention --dtype bf16 --shape fusion-pool --iters 1 --json >/dev/null 2>" + err;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  std::ifstream in(err);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("no native bf16"), std::string::npos) << text;
}

}  // namespace
