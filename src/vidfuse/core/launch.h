// `--nproc N` on one machine (train, extract): the torchrun-style launcher. Re-runs this program N
// times with RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set, each with its share of
// the cores (and, on a GPU machine, its own GPU: cuda:LOCAL_RANK), and waits.
#pragma once
#include <functional>
#include <string>
#include <vector>

namespace vidfuse {

// True when the torchrun environment (RANK or WORLD_SIZE) is already set: this process is a worker.
bool launched_as_worker();

// Runs `argv` (argv[0] = this executable) as `nproc` ranks on 127.0.0.1 with a free port. If one
// rank fails the others are stopped. Returns 0 when every rank succeeded, otherwise the first
// failing rank's exit status (128 + signal for a signal).
int launch_local_workers(int nproc, const std::vector<std::string>& argv);

// One run of this executable as a child process: its arguments (after the program name), the
// file its stdout and stderr go to, and its intra-op threads (OMP_NUM_THREADS).
struct LocalJob {
  std::vector<std::string> args;
  std::string log_path;
  int threads = 1;
};

// Runs `jobs` in order, at most `parallel` at once, and calls on_start(i) / on_done(i, exit
// status) from the calling thread as each starts and ends. Separate processes rather than threads:
// each has its own global RNG and thread pool, so a job's results do not depend on the others.
// Throws vidfuse::Error when a job cannot be started (those running are stopped first).
void run_local_jobs(const std::vector<LocalJob>& jobs, int parallel,
                    const std::function<void(size_t)>& on_start,
                    const std::function<void(size_t, int)>& on_done);

// This process's own command line (argv, from /proc/self/cmdline), to re-run it as workers.
std::vector<std::string> this_command_line();

}  // namespace vidfuse
