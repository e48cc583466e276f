// Data-parallel training across processes on torch c10d: a TCPStore rendezvous and a process group
// (Gloo for CPU tensors, NCCL for CUDA tensors in CUDA builds), configured from the launcher's
// environment: torchrun's RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT or Slurm's (see
// core/cluster_env.h).
#pragma once
#include <torch/torch.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace vidfuse::train {

struct DistributedOptions {
  int rank = 0;
  int world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::chrono::milliseconds timeout{std::chrono::minutes(5)};
  std::string backend = "gloo";  // or "nccl" (CUDA tensors; CUDA builds only)
};

class Distributed {
 public:
  // A single-process group: every collective is the identity.
  Distributed();
  // Joins (rank 0: hosts) the rendezvous and builds the Gloo group; throws vidfuse::Error with the
  // address and the cause if the group cannot be formed.
  explicit Distributed(const DistributedOptions& options);
  ~Distributed();
  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;

  // From the launcher's environment; single-process when there is one process. NCCL when
  // `device` is a CUDA device, else Gloo. Malformed or inconsistent variables are errors naming
  // the variable.
  static std::shared_ptr<Distributed> from_env(const std::string& device = "cpu");

  int rank() const { return rank_; }
  int world_size() const { return world_size_; }
  bool is_main() const { return rank_ == 0; }

  // In-place sum over ranks of each tensor (contiguous; any device Gloo accepts).
  void all_reduce_sum(std::vector<torch::Tensor>& tensors);
  // In-place mean over ranks of the gradients of `params` (undefined gradients count as zero),
  // as one flat buffer so the cost is one collective per step.
  void average_gradients(const std::vector<torch::Tensor>& params);
  // Copies rank `root`'s values of `tensors` to every rank.
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  void barrier();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int world_size_ = 1;
};

}  // namespace vidfuse::train
