// oneDNN matmul with fused epilogues (see onednn_matmul.h). Compiled without LibTorch's include
// path, so <oneapi/dnnl/dnnl.hpp> is the system's (Debian's libdnnl), not the wheel's.
#include "vidfuse/core/onednn_matmul.h"

#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "vidfuse/core/error.h"

#if VIDFUSE_HAVE_ONEDNN
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace vidfuse::onednn {

#if VIDFUSE_HAVE_ONEDNN

namespace {

using dnnl::memory;
using dt = memory::data_type;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dt to_dnnl(DType d) { return d == DType::BF16 ? dt::bf16 : dt::f32; }

// Only the brgemm kernels are taken. oneDNN's gemm-based matmul runs its own sgemm / bf16 gemm,
// whose one-time JIT set-up is a std::call_once whose trampoline symbol
// (gemm_info_t<...>::jit_init()::{lambda}) libtorch_cpu.so also exports, from the oneDNN 3.x
// linked into it: the dynamic linker binds libdnnl's call to LibTorch's copy, libdnnl's kernels
// are never generated, and the primitive fails at execution ("unimplemented"). The brgemm kernels
// (fp32 on AVX-512, bf16 on AVX512-BF16 or AMX) do not go through it; oneDNN takes them for dense
// rows, which is why FusedLinear passes dense rows only.
bool usable_impl(const char* name) { return std::string(name).rfind("brg", 0) == 0; }
size_t elem_size(DType d) { return d == DType::BF16 ? 2 : 4; }

}  // namespace

struct Matmul::Impl {
  int64_t n = 0, k = 0;
  DType dtype = DType::F32;
  Act act = Act::None;
  Epilogue epilogue = Epilogue::Store;
  // The weights: a plain copy until the first primitive is made, then that primitive's reordered
  // ones; a primitive that asks for another layout (another row or thread count may) gets its own
  // copy reordered from these.
  mutable memory weights_first;
  memory bias;  // [1, N]

  struct Prepared {
    dnnl::matmul prim;
    memory weights;  // in the primitive's layout
    memory::desc scratchpad;
  };
  mutable std::mutex mutex;
  // (rows, ldx, ldy, threads) -> primitive; the reordered weights are shared between primitives
  // that ask for the same layout (they normally all do).
  mutable std::map<std::tuple<int64_t, int64_t, int64_t, int>, Prepared> prepared;
  mutable std::vector<memory> reordered;

  dnnl::post_ops post_ops(int64_t m) const {
    dnnl::post_ops po;
    switch (act) {
      case Act::None:
        break;
      case Act::GeluErf:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_erf, 0.f, 0.f);
        break;
      case Act::GeluTanh:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_gelu_tanh, 0.f, 0.f);
        break;
      case Act::Silu:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_swish, 1.f, 0.f);
        break;
      case Act::Relu:
        po.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
        break;
    }
    if (epilogue == Epilogue::Accumulate) po.append_sum(1.f);
    if (epilogue == Epilogue::Multiply)
      po.append_binary(dnnl::algorithm::binary_mul,
                       memory::desc({m, n}, to_dnnl(dtype), memory::format_tag::ab));
    return po;
  }

  const Prepared& prepare(int64_t m, int64_t ldx, int64_t ldy, int threads) const {
    std::lock_guard<std::mutex> lock(mutex);
    const auto key = std::make_tuple(m, ldx, ldy, threads);
    if (auto it = prepared.find(key); it != prepared.end()) return it->second;
    const dt d = to_dnnl(dtype);
    const memory::desc src({m, k}, d, memory::dims{ldx, 1});
    const memory::desc dst({m, n}, d, memory::dims{ldy, 1});
    const memory::desc weights_any({k, n}, d, memory::format_tag::any);
    dnnl::primitive_attr attr;
    attr.set_post_ops(post_ops(m));
    // Scratch space from the caller (one buffer per thread, shared by every layer) rather than one
    // owned by each of a ViT-B's 48 primitives.
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights_any, bias.get_desc(), dst),
                                    attr, cpu_engine());
    if (!usable_impl(pd.impl_info_str()))
      throw Error(std::string("oneDNN offers only its '") + pd.impl_info_str() +
                  "' kernel for this matmul, which cannot run inside a LibTorch process "
                  "(onednn_matmul.cpp: usable_impl)");
    Prepared p{dnnl::matmul(pd), memory(), pd.scratchpad_desc()};
    for (const memory& w : reordered)
      if (w.get_desc() == pd.weights_desc()) p.weights = w;
    if (!p.weights) {
      p.weights = memory(pd.weights_desc(), cpu_engine());
      dnnl::stream s(cpu_engine());
      dnnl::reorder(weights_first, p.weights).execute(s, weights_first, p.weights);
      s.wait();
      if (reordered.empty()) weights_first = p.weights;  // frees the plain copy
      reordered.push_back(p.weights);
    }
    return prepared.emplace(key, std::move(p)).first->second;
  }
};

bool available() { return true; }

bool supports(DType dtype) {
  static const auto probe = [](DType d) {
    try {
      const int64_t m = 256, k = 768, n = 768;
      const memory::desc src({m, k}, to_dnnl(d), memory::format_tag::ab);
      const memory::desc weights({k, n}, to_dnnl(d), memory::format_tag::any);
      const memory::desc bias({1, n}, to_dnnl(d), memory::format_tag::ab);
      const memory::desc dst({m, n}, to_dnnl(d), memory::format_tag::ab);
      const dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, bias, dst),
                                            cpu_engine());
      return usable_impl(pd.impl_info_str());
    } catch (const dnnl::error&) {
      return false;
    }
  };
  static const bool f32 = probe(DType::F32), bf16 = probe(DType::BF16);
  return dtype == DType::BF16 ? bf16 : f32;
}

const char* version() {
  static const std::string v = [] {
    const dnnl_version_t* ver = dnnl::version();
    return std::to_string(ver->major) + "." + std::to_string(ver->minor) + "." +
           std::to_string(ver->patch);
  }();
  return v.c_str();
}

Matmul::Matmul(const void* weight, const void* bias, int64_t n, int64_t k, DType dtype, Act act,
               Epilogue epilogue)
    : impl_(std::make_shared<Impl>()) {
  impl_->n = n;
  impl_->k = k;
  impl_->dtype = dtype;
  impl_->act = act;
  impl_->epilogue = epilogue;
  const size_t es = elem_size(dtype);
  // [N, K] row-major is [K, N] column-major ("ba"). The layout the primitive wants is known only
  // with its row count, so a plain copy waits for the first call, which replaces it.
  impl_->weights_first =
      memory(memory::desc({k, n}, to_dnnl(dtype), memory::format_tag::ba), cpu_engine());
  std::memcpy(impl_->weights_first.get_data_handle(), weight, n * k * es);
  impl_->bias = memory(memory::desc({1, n}, to_dnnl(dtype), memory::format_tag::ab), cpu_engine());
  if (bias)
    std::memcpy(impl_->bias.get_data_handle(), bias, n * es);
  else
    std::memset(impl_->bias.get_data_handle(), 0, n * es);
}

void Matmul::run(const void* x, int64_t m, int64_t ldx, void* y, int64_t ldy, const void* other,
                 int threads) const {
  if (!impl_) throw Error("onednn::Matmul: run on an empty layer");
  if (impl_->epilogue == Epilogue::Multiply && !other)
    throw Error("onednn::Matmul: a multiplying epilogue needs its other operand");
  try {
    const Impl::Prepared& p = impl_->prepare(m, ldx, ldy, threads);
    const dt d = to_dnnl(impl_->dtype);
    const auto& eng = cpu_engine();
    memory src(memory::desc({m, impl_->k}, d, memory::dims{ldx, 1}), eng, const_cast<void*>(x));
    memory dst(memory::desc({m, impl_->n}, d, memory::dims{ldy, 1}), eng, y);
    std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src},
                                            {DNNL_ARG_WEIGHTS, p.weights},
                                            {DNNL_ARG_BIAS, impl_->bias},
                                            {DNNL_ARG_DST, dst}};
    if (impl_->epilogue == Epilogue::Multiply) {
      const int idx = impl_->act == Act::None ? 0 : 1;
      args[DNNL_ARG_ATTR_MULTIPLE_POST_OP(idx) | DNNL_ARG_SRC_1] = memory(
          memory::desc({m, impl_->n}, d, memory::format_tag::ab), eng, const_cast<void*>(other));
    }
    const memory::desc& scratch_md = p.scratchpad;
    thread_local std::vector<char> scratch;
    if (scratch.size() < scratch_md.get_size()) scratch.resize(scratch_md.get_size());
    args[DNNL_ARG_SCRATCHPAD] = memory(scratch_md, eng, scratch.data());
    thread_local dnnl::stream stream(eng);
    p.prim.execute(stream, args);
    stream.wait();
  } catch (const dnnl::error& e) {
    throw Error(std::string("oneDNN matmul [") + std::to_string(m) + " x " +
                std::to_string(impl_->k) + "] x [" + std::to_string(impl_->k) + " x " +
                std::to_string(impl_->n) + "] (leading dimensions " + std::to_string(ldx) + ", " +
                std::to_string(ldy) + "; epilogue " +
                std::to_string(static_cast<int>(impl_->epilogue)) + ", activation " +
                std::to_string(static_cast<int>(impl_->act)) + ") failed: " + e.what() +
                " (status " + std::to_string(static_cast<int>(e.status)) + ")");
  }
}

int64_t Matmul::n() const { return impl_ ? impl_->n : 0; }
int64_t Matmul::k() const { return impl_ ? impl_->k : 0; }

#else  // no oneDNN in this build

struct Matmul::Impl {};

bool available() { return false; }
bool supports(DType) { return false; }
const char* version() { return ""; }

Matmul::Matmul(const void*, const void*, int64_t, int64_t, DType, Act, Epilogue) {
  throw Error("this vidfuse was built without oneDNN (libdnnl-dev; scripts/install-deps.sh)");
}
void Matmul::run(const void*, int64_t, int64_t, void*, int64_t, const void*, int) const {
  throw Error("this vidfuse was built without oneDNN (libdnnl-dev; scripts/install-deps.sh)");
}
int64_t Matmul::n() const { return 0; }
int64_t Matmul::k() const { return 0; }

#endif

}  // namespace vidfuse::onednn
