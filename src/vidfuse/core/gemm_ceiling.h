// The ceilings benchmarks compare against: the matrix-multiply rate of this machine on square
// matrices in the same process (same threads, same BLAS / oneDNN), through torch::mm and through
// PackedLinear (oneDNN's convolution kernels on the CPU, which can be faster than the BLAS).
#pragma once
#include <torch/torch.h>

namespace vidfuse {

// Best GFLOP/s of torch::mm on n x n matrices of `dtype` (n = 2048 by default) on `device`, timed
// for at least `min_seconds` after a warm-up. FLOPs = 2 n^3 per product.
double measure_gemm_gflops(torch::ScalarType dtype, torch::Device device = torch::kCPU,
                           int64_t n = 2048, double min_seconds = 1.0);

// The same product through PackedLinear (core/linear.h): the rate the models' linear layers get.
double measure_linear_gflops(torch::ScalarType dtype, torch::Device device = torch::kCPU,
                             int64_t n = 2048, double min_seconds = 1.0);

}  // namespace vidfuse
