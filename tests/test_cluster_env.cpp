// The launcher environments a job may run under (torchrun, Slurm srun / job arrays, Kubernetes
// indexed jobs) and the rank, GPU, rendezvous and extraction shard each one leads to.
#include <gtest/gtest.h>

#include <map>

#include "test_util.h"
#include "vidfuse/core/cluster_env.h"

using namespace vidfuse;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(ClusterEnv, NothingSetIsOneProcess) {
  const ProcessPlace p = process_place_from_env(env_of({}));
  EXPECT_EQ(p.launcher, "single");
  EXPECT_EQ(p.rank, 0);
  EXPECT_EQ(p.world_size, 1);
  const ShardPlace s = shard_place_from_env(env_of({}));
  EXPECT_EQ(s.index, 0);
  EXPECT_EQ(s.count, 1);
}

TEST(ClusterEnv, Torchrun) {
  const auto env = env_of({{"RANK", "5"},
                           {"WORLD_SIZE", "8"},
                           {"LOCAL_RANK", "1"},
                           {"LOCAL_WORLD_SIZE", "4"},
                           {"MASTER_ADDR", "10.0.0.7"},
                           {"MASTER_PORT", "29511"}});
  const ProcessPlace p = process_place_from_env(env);
  EXPECT_EQ(p.launcher, "torchrun");
  EXPECT_EQ(p.rank, 5);
  EXPECT_EQ(p.world_size, 8);
  EXPECT_EQ(p.local_rank, 1);
  EXPECT_EQ(p.master_addr, "10.0.0.7");
  EXPECT_EQ(p.master_port, 29511);
  const ShardPlace s = shard_place_from_env(env);
  EXPECT_EQ(s.index, 5);
  EXPECT_EQ(s.count, 8);
  EXPECT_EQ(s.source, "ranks");
}

TEST(ClusterEnv, SlurmSrun) {
  // srun -N 2 --ntasks-per-node 4: the 7th task, on the second node.
  const auto env = env_of({{"SLURM_PROCID", "6"},
                           {"SLURM_NTASKS", "8"},
                           {"SLURM_LOCALID", "2"},
                           {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                           {"SLURM_JOB_ID", "123456"},
                           {"SLURM_JOB_NODELIST", "gpu[007-008]"}});
  const ProcessPlace p = process_place_from_env(env);
  EXPECT_EQ(p.launcher, "slurm");
  EXPECT_EQ(p.rank, 6);
  EXPECT_EQ(p.world_size, 8);
  EXPECT_EQ(p.local_rank, 2);
  EXPECT_EQ(p.local_world_size, 4);
  EXPECT_EQ(p.master_addr, "gpu007");
  EXPECT_EQ(p.master_port, 20000 + 123456 % 20000);
  const ShardPlace s = shard_place_from_env(env);
  EXPECT_EQ(s.index, 6);
  EXPECT_EQ(s.count, 8);
  // torchrun started inside an allocation: its variables win; MASTER_* override Slurm's guess.
  const auto both = env_of({{"SLURM_PROCID", "0"},
                            {"SLURM_NTASKS", "1"},
                            {"RANK", "3"},
                            {"WORLD_SIZE", "4"},
                            {"MASTER_PORT", "4000"}});
  EXPECT_EQ(process_place_from_env(both).rank, 3);
  EXPECT_EQ(process_place_from_env(both).master_port, 4000);
}

TEST(ClusterEnv, SlurmHostlists) {
  EXPECT_EQ(first_slurm_host("node17"), "node17");
  EXPECT_EQ(first_slurm_host("gpu[003-010,12],cpu1"), "gpu003");
  EXPECT_EQ(first_slurm_host("a1,b[2-3]"), "a1");
  EXPECT_EQ(first_slurm_host("rack2-n[5,9]"), "rack2-n5");
}

TEST(ClusterEnv, SlurmArrayShards) {
  // sbatch --array=1-16, one task each: task 4 is shard 3 of 16.
  const auto one = env_of({{"SLURM_ARRAY_TASK_ID", "4"},
                           {"SLURM_ARRAY_TASK_MIN", "1"},
                           {"SLURM_ARRAY_TASK_COUNT", "16"},
                           {"SLURM_NTASKS", "1"},
                           {"SLURM_PROCID", "0"}});
  ShardPlace s = shard_place_from_env(one);
  EXPECT_EQ(s.index, 3);
  EXPECT_EQ(s.count, 16);
  EXPECT_EQ(s.source, "slurm-array");
  // Each array task running 4 ranks (srun or --nproc): 64 shards, task-major.
  const auto ranks = env_of({{"SLURM_ARRAY_TASK_ID", "2"},
                             {"SLURM_ARRAY_TASK_COUNT", "16"},
                             {"RANK", "3"},
                             {"WORLD_SIZE", "4"}});
  s = shard_place_from_env(ranks);
  EXPECT_EQ(s.index, 2 * 4 + 3);
  EXPECT_EQ(s.count, 64);
  EXPECT_THROW_WITH(shard_place_from_env(env_of({{"SLURM_ARRAY_TASK_ID", "2"}})),
                    "SLURM_ARRAY_TASK_COUNT");
  EXPECT_THROW_WITH(shard_place_from_env(
                        env_of({{"SLURM_ARRAY_TASK_ID", "16"}, {"SLURM_ARRAY_TASK_COUNT", "16"}})),
                    "SLURM_ARRAY_TASK_ID", "[0, 16)");
}

TEST(ClusterEnv, KubernetesIndexedJob) {
  const auto env = env_of({{"JOB_COMPLETION_INDEX", "7"}, {"VIDFUSE_SHARD_COUNT", "10"}});
  const ShardPlace s = shard_place_from_env(env);
  EXPECT_EQ(s.index, 7);
  EXPECT_EQ(s.count, 10);
  EXPECT_EQ(s.source, "k8s-indexed");
  EXPECT_THROW_WITH(shard_place_from_env(env_of({{"JOB_COMPLETION_INDEX", "7"}})),
                    "VIDFUSE_SHARD_COUNT", ".spec.completions");
}

TEST(ClusterEnv, MalformedVariablesAreNamed) {
  EXPECT_THROW_WITH(process_place_from_env(env_of({{"WORLD_SIZE", "two"}})), "WORLD_SIZE",
                    "\"two\"", "not an integer");
  EXPECT_THROW_WITH(process_place_from_env(env_of({{"WORLD_SIZE", "2"}})), "RANK is not");
  EXPECT_THROW_WITH(process_place_from_env(env_of({{"WORLD_SIZE", "2"}, {"RANK", "2"}})), "rank 2",
                    "[0, 2)");
  EXPECT_THROW_WITH(process_place_from_env(env_of({{"MASTER_PORT", "70000"}})), "1..65535");
}

}  // namespace
