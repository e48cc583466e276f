// vidfuse's own GEMM for frozen linear layers on AVX-512 CPUs: y = act(x wᵀ + b), y += x wᵀ + b,
// or y = act(x wᵀ + b) * other, the epilogue applied while the output tile is in registers.
//
// Why a kernel of our own: on AMD Zen 4 the only oneDNN this process can call (Debian's 2.6, see
// onednn_matmul.h) runs DINOv3's bf16 linear layers at ~85 % of the `vdpbf16ps` peak, and they are
// nearly nine tenths of the forward. The shapes are few and regular (K = 768 or 3072, N a multiple
// of 32), so one register-blocked micro-kernel with the weights packed once, in the order it reads
// them, does better (docs/dinov3-cpu-kernels.md has the figures).
//
// The layout: the weights are cut into blocks of 32 output columns; inside a block they are stored
// step by step along K (bf16: pairs of K, as `vdpbf16ps` multiplies them), so the micro-kernel
// reads each block as one sequential stream. Each task of the parallel loop owns a block of rows
// small enough to stay in L2 and a range of column blocks; a 12 x 32 tile of the output (24 of the
// 32 vector registers) accumulates over all of K, then gets its bias, activation and store, add or
// product, and is rounded once.
#pragma once
#include <cstdint>
#include <memory>

#include "vidfuse/core/onednn_matmul.h"  // the DType, Act and Epilogue enums the two kernels share

namespace vidfuse::cpu_gemm {

using onednn::Act;
using onednn::DType;
using onednn::Epilogue;

// Whether this CPU runs the kernel for `dtype`: fp32 needs AVX-512 (F, BW, VL, DQ), bf16 also
// AVX512-BF16.
bool supports(DType dtype);

class Gemm {
 public:
  Gemm() = default;
  // weight [N, K] row-major, bias [N] or null, both of `dtype`; packed now, so the caller's
  // buffers may go away. Throws vidfuse::Error where supports(dtype) is false.
  Gemm(const void* weight, const void* bias, int64_t n, int64_t k, DType dtype, Act act,
       Epilogue epilogue);

  // x [M, K] and y [M, N] row-major with leading dimensions ldx and ldy (elements, >= K and >= N);
  // `other` [M, N] contiguous for Epilogue::Multiply. Runs on ATen's intra-op threads.
  void run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy, const void* other) const;

  bool defined() const { return impl_ != nullptr; }

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace vidfuse::cpu_gemm
