// `--nproc N` on one machine (train, extract): the torchrun-style launcher. Re-runs this program N
// times with RANK / LOCAL_RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set, each with its share of
// the cores (and, on a GPU machine, its own GPU: cuda:LOCAL_RANK), and waits.
#pragma once
#include <string>
#include <vector>

namespace vidfuse {

// True when the torchrun environment (RANK or WORLD_SIZE) is already set: this process is a worker.
bool launched_as_worker();

// Runs `argv` (argv[0] = this executable) as `nproc` ranks on 127.0.0.1 with a free port. If one
// rank fails the others are stopped. Returns 0 when every rank succeeded, otherwise the first
// failing rank's exit status (128 + signal for a signal).
int launch_local_workers(int nproc, const std::vector<std::string>& argv);

// This process's own command line (argv, from /proc/self/cmdline), to re-run it as workers.
std::vector<std::string> this_command_line();

}  // namespace vidfuse
