// Process-wide runtime setup: thread counts, and a warning when LibTorch would run on a slow BLAS.
#pragma once
#include <string>

namespace vidfuse {

// Sets intra-op threads (0 = all cores) and warns once on stderr if the BLAS in use is the
// reference implementation (about 30x slower than OpenBLAS).
void configure_runtime(int threads);

// The shared library that provides BLAS in this process, as the dynamic loader resolved it
// ("" if none is mapped).
std::string loaded_blas_library();

// True if LibTorch has MKL built in or `loaded_blas_library()` names an optimised BLAS
// (OpenBLAS, MKL, BLIS).
bool blas_is_fast();

// How many threads one at::parallel_for over `at::get_num_threads()` items actually ran on: 1 when
// the library was built without OpenMP, where ATen's header-only parallel_for runs serially.
int parallel_for_threads();

// TF32 for fp32 matrix products and convolutions on CUDA (cuBLAS and cuDNN). LibTorch allows it
// for cuDNN by default; configure_runtime() turns both off so fp32 results match the references,
// unless VIDFUSE_TF32=1. No effect on the CPU.
void set_tf32(bool allow);

// The device a rank uses: "cuda" becomes cuda:<local_rank>, or cuda:<local_rank mod visible GPUs>
// where the launcher gave each task its own CUDA_VISIBLE_DEVICES (srun --gpu-bind); any other
// name is returned as it is.
std::string device_for_rank(const std::string& device, int local_rank);

// The vector ISA this CPU offers ATen's kernels, as benchmarks report it: "avx512-bf16+amx",
// "avx512-bf16", "avx512", "avx2" or "baseline".
std::string cpu_isa();

// True when the CPU has AMX tiles for bf16 (Sapphire Rapids and later): SDPA's CPU flash kernel
// runs on them.
bool cpu_has_amx();

// True on Intel CPUs (the cpuid vendor string "GenuineIntel"): MKL takes its fastest kernels only
// there.
bool cpu_is_intel();

// True when the CPU computes bf16 natively (AVX512-BF16 or AMX-BF16). Elsewhere (AVX2-only CPUs
// such as AMD Zen 3) bf16 is emulated: ~90x slower than fp32 for ViT-B/16. VIDFUSE_CPU_BF16=0|1
// overrides the detection (tests use it).
bool cpu_has_native_bf16();

// The warning to print when bf16 compute is asked for on `device` ("cpu", "cuda:0", ...) and the
// CPU lacks native bf16, naming the fp32 alternative; "" when there is nothing to say.
std::string bf16_compute_warning(const std::string& device);
// Prints bf16_compute_warning(device) once per process on stderr when `bf16` is set.
void warn_if_bf16_is_emulated(bool bf16, const std::string& device);

// The most resident memory this process has held so far, in GiB (benchmarks report it).
double peak_rss_gb();

}  // namespace vidfuse
