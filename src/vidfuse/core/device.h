// Which device a computation runs on. `auto` (the default of every command and of the library)
// takes this process's GPU when LibTorch sees one and the CPU otherwise, so a GPU machine is never
// left idle for want of a flag; an explicit GPU on a machine without one is an error, never a
// silent fallback to a CPU a hundred times slower. Part of the public API.
#pragma once
#include <string>

namespace vidfuse {

struct DeviceChoice {
  std::string device;  // a torch device name: "cpu", "cuda:0", ...
  std::string reason;  // why it was chosen, for the log line and the run's metadata
};

// requested: "auto", "cpu", "cuda" or "cuda:N". "auto" and "cuda" mean this process's own GPU,
// cuda:LOCAL_RANK (modulo the visible GPUs) under torchrun, `--nproc` or srun. `local_rank` < 0
// reads it from the launcher's environment; `cuda_devices` < 0 asks LibTorch (tests pass both).
// Throws vidfuse::Error for an unknown name, or for a CUDA device that is not there.
DeviceChoice resolve_device(const std::string& requested, int local_rank = -1,
                            int cuda_devices = -1);

// resolve_device, then one line on stderr: "vidfuse: <who> on cuda:0 (auto: 1 CUDA device)".
// Returns the device name.
std::string announce_device(const std::string& requested, const std::string& who);

}  // namespace vidfuse
