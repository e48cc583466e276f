#include "vidfuse/core/cluster_env.h"

#include <cstdlib>
#include <stdexcept>

#include "vidfuse/core/error.h"

namespace vidfuse {

namespace {

int as_int(const std::string& name, const std::string& value) {
  try {
    size_t used = 0;
    const int v = std::stoi(value, &used);
    if (used != value.size()) throw std::invalid_argument("trailing characters");
    return v;
  } catch (const std::exception&) {
    throw Error("environment variable " + name + "=\"" + value + "\" is not an integer");
  }
}

std::optional<int> int_var(const EnvLookup& env, const std::string& name) {
  const auto v = env(name);
  if (!v || v->empty()) return std::nullopt;
  return as_int(name, *v);
}

// Slurm's SLURM_NTASKS_PER_NODE reads "4" or "4(x2)" (4 tasks on each of 2 nodes); the first count.
std::optional<int> slurm_tasks_per_node(const EnvLookup& env) {
  const auto v = env("SLURM_NTASKS_PER_NODE");
  if (!v || v->empty()) return std::nullopt;
  return as_int("SLURM_NTASKS_PER_NODE", v->substr(0, v->find('(')));
}

void check_rank(const std::string& what, int rank, int world) {
  if (world < 1)
    throw Error("environment: " + what + " world size must be >= 1, got " + std::to_string(world));
  if (rank < 0 || rank >= world)
    throw Error("environment: " + what + " rank " + std::to_string(rank) + " is outside [0, " +
                std::to_string(world) + ")");
}

}  // namespace

std::optional<std::string> process_env(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  if (!v) return std::nullopt;
  return std::string(v);
}

std::string first_slurm_host(const std::string& nodelist) {
  // Up to the first comma outside brackets: "a[1-2,5],b" -> "a[1-2,5]".
  std::string head;
  int depth = 0;
  for (char c : nodelist) {
    if (c == ',' && depth == 0) break;
    depth += c == '[' ? 1 : c == ']' ? -1 : 0;
    head += c;
  }
  const auto open = head.find('[');
  if (open == std::string::npos) return head;
  // "gpu[003-010,12]" -> prefix "gpu", first range "003-010" -> "003" (zero padding kept).
  const std::string inside = head.substr(open + 1, head.find_first_of(",-]", open + 1) - open - 1);
  return head.substr(0, open) + inside;
}

ProcessPlace process_place_from_env(const EnvLookup& env) {
  ProcessPlace p;
  if (const auto world = int_var(env, "WORLD_SIZE")) {
    p.launcher = "torchrun";
    p.world_size = *world;
    const auto rank = int_var(env, "RANK");
    if (!rank && p.world_size > 1) throw Error("environment: WORLD_SIZE is set but RANK is not");
    p.rank = rank.value_or(0);
    p.local_rank = int_var(env, "LOCAL_RANK").value_or(p.rank);
    p.local_world_size = int_var(env, "LOCAL_WORLD_SIZE").value_or(p.world_size);
  } else if (const auto tasks = int_var(env, "SLURM_NTASKS")) {
    p.launcher = "slurm";
    p.world_size = *tasks;
    p.rank = int_var(env, "SLURM_PROCID").value_or(0);
    p.local_rank = int_var(env, "SLURM_LOCALID").value_or(0);
    p.local_world_size = slurm_tasks_per_node(env).value_or(p.world_size);
    const auto nodes =
        env("SLURM_STEP_NODELIST") ? env("SLURM_STEP_NODELIST") : env("SLURM_JOB_NODELIST");
    if (nodes && !nodes->empty()) p.master_addr = first_slurm_host(*nodes);
    // One port per job, so two jobs sharing a node do not collide (torchrun's rule of thumb).
    if (const auto job = int_var(env, "SLURM_JOB_ID")) p.master_port = 20000 + *job % 20000;
  }
  if (const auto addr = env("MASTER_ADDR"); addr && !addr->empty()) p.master_addr = *addr;
  if (const auto port = int_var(env, "MASTER_PORT")) p.master_port = *port;
  check_rank(p.launcher, p.rank, p.world_size);
  check_rank(p.launcher + " local", p.local_rank, std::max(p.local_world_size, p.local_rank + 1));
  if (p.master_port <= 0 || p.master_port > 65535)
    throw Error("environment: master port must be in 1..65535, got " +
                std::to_string(p.master_port));
  return p;
}

ShardPlace shard_place_from_env(const EnvLookup& env) {
  const ProcessPlace ranks = process_place_from_env(env);
  int job = 0, jobs = 1;
  std::string source = ranks.world_size > 1 ? "ranks" : "single";
  if (const auto task = int_var(env, "SLURM_ARRAY_TASK_ID")) {
    const auto count = int_var(env, "SLURM_ARRAY_TASK_COUNT");
    if (!count)
      throw Error("environment: SLURM_ARRAY_TASK_ID is set but SLURM_ARRAY_TASK_COUNT is not");
    // Arrays may start anywhere (--array=1-8): shard 0 is the lowest task id.
    job = *task - int_var(env, "SLURM_ARRAY_TASK_MIN").value_or(0);
    jobs = *count;
    check_rank("SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN)", job, jobs);
    source = "slurm-array";
  } else if (const auto index = int_var(env, "JOB_COMPLETION_INDEX")) {
    const auto count = int_var(env, "VIDFUSE_SHARD_COUNT");
    if (!count)
      throw Error(
          "environment: JOB_COMPLETION_INDEX is set (a Kubernetes indexed job) but "
          "VIDFUSE_SHARD_COUNT is not: set it to the job's .spec.completions");
    job = *index;
    jobs = *count;
    check_rank("JOB_COMPLETION_INDEX", job, jobs);
    source = "k8s-indexed";
  }
  return {job * ranks.world_size + ranks.rank, jobs * ranks.world_size, source};
}

}  // namespace vidfuse
