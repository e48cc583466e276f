// `--nproc N` on one machine: the torchrun-style launcher. Re-runs this program N times with
// RANK / WORLD_SIZE / MASTER_ADDR / MASTER_PORT set, each with its share of the cores, and waits.
#pragma once
#include <string>
#include <vector>

namespace vidfuse::train {

// True when the torchrun environment (RANK or WORLD_SIZE) is already set: this process is a worker.
bool launched_as_worker();

// Runs `argv` (argv[0] = this executable) as `nproc` ranks on 127.0.0.1 with a free port. If one
// rank fails the others are stopped. Returns 0 when every rank succeeded, otherwise the first
// failing rank's exit status (128 + signal for a signal).
int launch_local_workers(int nproc, const std::vector<std::string>& argv);

}  // namespace vidfuse::train
