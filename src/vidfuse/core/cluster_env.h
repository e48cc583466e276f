// Where this process sits in a multi-process job, read from the launcher's environment, so that
// `torchrun`, `vidfuse ... --nproc N`, `srun vidfuse ...`, a Slurm job array or a Kubernetes
// indexed job need no wrapper script.
//
// Ranks (training and extraction processes):
//   torchrun / --nproc: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
//   Slurm (srun):       SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE; the
//                       rendezvous host is the first node of SLURM_JOB_NODELIST and the port is
//                       derived from SLURM_JOB_ID (MASTER_ADDR / MASTER_PORT override both).
//   torchrun's variables win where both are set (torchrun started inside an allocation).
// Extraction shards (independent jobs writing one store) multiply the ranks:
//   Slurm array:        SLURM_ARRAY_TASK_ID (offset by SLURM_ARRAY_TASK_MIN),
//   SLURM_ARRAY_TASK_COUNT; Kubernetes indexed: JOB_COMPLETION_INDEX, with the job's completions in
//   VIDFUSE_SHARD_COUNT
//                       (Kubernetes does not export it; set it from .spec.completions).
//   shard index = job index * world_size + rank, shard count = jobs * world_size.
#pragma once
#include <functional>
#include <optional>
#include <string>

namespace vidfuse {

// name -> value, or nullopt when unset; tests pass their own.
using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
std::optional<std::string> process_env(const std::string& name);

struct ProcessPlace {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;  // the GPU this process uses: cuda:local_rank
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "single";  // "single", "torchrun" or "slurm"
};

struct ShardPlace {
  int index = 0;
  int count = 1;
  std::string source = "single";  // "single", "--shard", "ranks", "slurm-array", "k8s-indexed"
};

// Malformed or inconsistent variables are vidfuse::Error naming the variable.
ProcessPlace process_place_from_env(const EnvLookup& env = process_env);
ShardPlace shard_place_from_env(const EnvLookup& env = process_env);

// The first host of a Slurm hostlist: "gpu[003-010,12],cpu1" -> "gpu003".
std::string first_slurm_host(const std::string& nodelist);

}  // namespace vidfuse
