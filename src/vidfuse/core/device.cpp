#include "vidfuse/core/device.h"

#include <torch/cuda.h>

#include <cctype>
#include <iostream>

#include "vidfuse/core/cluster_env.h"
#include "vidfuse/core/error.h"

namespace vidfuse {

namespace {

bool all_digits(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit(static_cast<unsigned char>(c))) return false;
  return true;
}

std::string plural_gpus(int n) { return std::to_string(n) + " CUDA device" + (n == 1 ? "" : "s"); }

}  // namespace

DeviceChoice resolve_device(const std::string& requested, int local_rank, int cuda_devices) {
  const bool is_auto = requested == "auto" || requested.empty();
  const bool is_cuda = requested == "cuda" || requested.rfind("cuda:", 0) == 0;
  if (!is_auto && !is_cuda && requested != "cpu")
    throw Error("device '" + requested + "': auto, cpu, cuda or cuda:N");
  if (requested == "cpu") return {"cpu", "asked for"};
  if (requested.rfind("cuda:", 0) == 0 && !all_digits(requested.substr(5)))
    throw Error("device '" + requested + "': cuda:N takes a GPU number");

  if (cuda_devices < 0) cuda_devices = static_cast<int>(torch::cuda::device_count());
  if (cuda_devices == 0) {
    if (is_auto) return {"cpu", "auto: no CUDA device found"};
    throw Error("device '" + requested +
                "' was asked for, but no CUDA device is visible to this process (use cpu, or "
                "auto to take a GPU only where there is one)");
  }
  if (requested.rfind("cuda:", 0) == 0) {
    const int index = std::stoi(requested.substr(5));
    if (index >= cuda_devices)
      throw Error("device '" + requested + "': only " + plural_gpus(cuda_devices) +
                  " visible (cuda:0 .. cuda:" + std::to_string(cuda_devices - 1) + ")");
    return {requested, "asked for"};
  }
  // "auto" or "cuda": this rank's own GPU. Where the launcher gave each task its own
  // CUDA_VISIBLE_DEVICES (srun --gpu-bind), local ranks outnumber the visible GPUs: wrap.
  if (local_rank < 0) local_rank = process_place_from_env().local_rank;
  const std::string device = "cuda:" + std::to_string(local_rank % cuda_devices);
  std::string reason = (is_auto ? "auto: " : "cuda: ") + plural_gpus(cuda_devices);
  if (local_rank > 0) reason += ", local rank " + std::to_string(local_rank);
  return {device, reason};
}

std::string announce_device(const std::string& requested, const std::string& who) {
  const DeviceChoice choice = resolve_device(requested);
  std::cerr << "vidfuse: " << who << " on " << choice.device << " (" << choice.reason << ")\n";
  return choice.device;
}

}  // namespace vidfuse
