// A frozen linear layer on oneDNN's own matmul primitive, with its epilogue fused: y = act(x wᵀ +
// b), y += x wᵀ + b (a residual add), or y = act(x wᵀ + b) * other (a gated MLP).
//
// Why not LibTorch's route (PackedLinear): LibTorch reaches oneDNN only as a 1x1 convolution or
// through ideep, with the weights reordered on every call, no post-ops, and the bias, activation
// and residual add as separate passes over the activations. Here the weights are reordered once
// into the blocked layout the primitive asks for, and the primitive (one per row count and thread
// count, cached) applies the bias, activation or residual add while the output tile is in
// registers.
//
// Which oneDNN: the `torch` wheel carries oneDNN 3.x headers but links oneDNN statically with its
// symbols hidden (libtorch_cpu.so exports no dnnl_* symbol), so it cannot be called from here; this
// takes Debian's libdnnl (scripts/install-deps.sh). Its headers would be shadowed by the wheel's
// (a different major version) on any target that sees LibTorch's include path, so this header
// includes neither torch nor oneDNN, and its source is compiled in a target of its own
// (CMakeLists.txt: vidfuse_onednn). Without libdnnl the build still succeeds and available() is
// false.
#pragma once
#include <cstdint>
#include <memory>

namespace vidfuse::onednn {

enum class DType { F32, BF16 };  // BF16: raw 16-bit words
enum class Act { None, GeluErf, GeluTanh, Silu, Relu };
enum class Epilogue {
  Store,       // y = act(x wᵀ + b)
  Accumulate,  // y += x wᵀ + b (oneDNN's sum post-op; y is read and written in place)
  Multiply,    // y = act(x wᵀ + b) * other, elementwise ([M, N] like y)
};

// Whether this build has oneDNN (Debian's libdnnl) linked in.
bool available();
// Whether oneDNN has a kernel for this dtype on this CPU that runs inside a LibTorch process (its
// brgemm ones: fp32 needs AVX-512, bf16 AVX512-BF16 or AMX; see usable_impl in the source).
bool supports(DType dtype);
// The oneDNN library version, "" when not available.
const char* version();

class Matmul {
 public:
  Matmul() = default;
  // weight [N, K] row-major, bias [N] or null, both of `dtype`; copied (reordered) now, so the
  // caller's buffers may go away.
  Matmul(const void* weight, const void* bias, int64_t n, int64_t k, DType dtype, Act act,
         Epilogue epilogue);

  // x [M, K] and y [M, N] row-major with leading dimensions ldx and ldy (elements; oneDNN's brgemm
  // kernels, the only ones taken, want them dense: ldx = K, ldy = N); `other` [M, N]
  // contiguous for Epilogue::Multiply. `threads` is the OpenMP thread count the call runs on (the
  // primitive is cached per row count and thread count, as its blocking depends on both).
  void run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy, const void* other,
           int threads) const;

  bool defined() const { return impl_ != nullptr; }
  int64_t n() const;
  int64_t k() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace vidfuse::onednn
