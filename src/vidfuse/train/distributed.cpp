// c10d's Gloo process group is compiled into Debian's libtorch_cpu; its header is guarded by
// USE_C10D_GLOO (set by PyTorch's own build) and needs the gloo headers from libgloo-dev.
#ifndef USE_C10D_GLOO
#define USE_C10D_GLOO 1
#endif
#include "vidfuse/train/distributed.h"

#include <cstdlib>
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "vidfuse/core/cluster_env.h"
#include "vidfuse/core/error.h"

namespace vidfuse::train {

#ifdef VIDFUSE_WITH_NCCL
// distributed_nccl.cpp (CUDA builds only: it needs the CUDA and NCCL headers).
c10::intrusive_ptr<c10d::Backend> make_nccl_backend(const c10::intrusive_ptr<c10d::Store>& store,
                                                    int rank, int world_size,
                                                    std::chrono::milliseconds timeout);
#endif

struct Distributed::Impl {
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> group;  // Gloo (CPU tensors) or NCCL (CUDA tensors)
};

Distributed::Distributed() = default;
Distributed::~Distributed() = default;

Distributed::Distributed(const DistributedOptions& o) : rank_(o.rank), world_size_(o.world_size) {
  const std::string where = "distributed " + o.backend + " (rank " + std::to_string(o.rank) +
                            " of " + std::to_string(o.world_size) + ", " + o.master_addr + ":" +
                            std::to_string(o.master_port) + ")";
  if (o.world_size < 1 || o.rank < 0 || o.rank >= o.world_size)
    throw Error(where + ": rank must be in [0, world_size)");
  if (o.master_port <= 0 || o.master_port > 65535)
    throw Error(where + ": master port must be in 1..65535");
  if (o.world_size == 1) return;
  impl_ = std::make_unique<Impl>();
  try {
    c10d::TCPStoreOptions so;
    so.port = static_cast<std::uint16_t>(o.master_port);
    so.isServer = o.rank == 0;
    so.numWorkers = static_cast<size_t>(o.world_size);
    so.waitWorkers = true;
    so.timeout = o.timeout;
    impl_->store = c10::make_intrusive<c10d::TCPStore>(o.master_addr, so);
    if (o.backend == "nccl") {
#ifdef VIDFUSE_WITH_NCCL
      impl_->group = make_nccl_backend(impl_->store, o.rank, o.world_size, o.timeout);
#else
      throw Error("NCCL needs a CUDA build of LibTorch (this one has no CUDA)");
#endif
    } else if (o.backend == "gloo") {
      auto go = c10d::ProcessGroupGloo::Options::create(o.timeout);
      go->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(o.master_addr));
      impl_->group =
          c10::make_intrusive<c10d::ProcessGroupGloo>(impl_->store, o.rank, o.world_size, go);
    } else {
      throw Error("unknown backend '" + o.backend + "' (gloo or nccl)");
    }
  } catch (const c10::Error& e) {
    throw Error(where + ": cannot form the process group: " + e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw Error(where + ": cannot form the process group: " + e.what());
  }
}

std::shared_ptr<Distributed> Distributed::from_env(const std::string& device) {
  const ProcessPlace place = process_place_from_env();
  if (place.world_size == 1) return std::make_shared<Distributed>();
  DistributedOptions o;
  o.backend = device.rfind("cuda", 0) == 0 ? "nccl" : "gloo";
  o.rank = place.rank;
  o.world_size = place.world_size;
  o.master_addr = place.master_addr;
  o.master_port = place.master_port;
  return std::make_shared<Distributed>(o);
}

void Distributed::all_reduce_sum(std::vector<torch::Tensor>& tensors) {
  if (!impl_ || tensors.empty()) return;
  for (auto& t : tensors) {
    std::vector<torch::Tensor> one{t};
    impl_->group->allreduce(one)->wait();
  }
}

void Distributed::average_gradients(const std::vector<torch::Tensor>& params) {
  if (!impl_ || params.empty()) return;
  std::vector<torch::Tensor> flat;
  flat.reserve(params.size());
  for (const auto& p : params)
    flat.push_back(p.grad().defined() ? p.grad().reshape(-1)
                                      : torch::zeros({p.numel()}, p.options()));
  std::vector<torch::Tensor> buffer{torch::cat(flat)};
  impl_->group->allreduce(buffer)->wait();
  buffer[0].div_(world_size_);
  int64_t offset = 0;
  for (const auto& p : params) {
    auto g = buffer[0].narrow(0, offset, p.numel()).view(p.sizes());
    offset += p.numel();
    if (p.grad().defined())
      p.mutable_grad().copy_(g);
    else
      p.mutable_grad() = g.clone();
  }
}

void Distributed::broadcast(std::vector<torch::Tensor>& tensors, int root) {
  if (!impl_ || tensors.empty()) return;
  c10d::BroadcastOptions bo;
  bo.rootRank = root;
  for (auto& t : tensors) {
    std::vector<torch::Tensor> one{t};
    impl_->group->broadcast(one, bo)->wait();
  }
}

void Distributed::barrier() {
  if (!impl_) return;
  impl_->group->barrier()->wait();
}

}  // namespace vidfuse::train
