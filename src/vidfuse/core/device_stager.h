// Host-to-device uploads that overlap compute on a GPU: inputs are staged in page-locked (pinned)
// host memory and copied on a side stream, each upload with an event that the compute stream waits
// on just before it uses that tensor, so chunk k+1 is copied while chunk k runs. Written against
// c10's device-generic stream and event API: no CUDA headers, and on the CPU every call is a plain
// conversion.
#pragma once
#include <c10/core/Event.h>
#include <c10/core/Stream.h>
#include <torch/torch.h>

#include <optional>

namespace vidfuse {

class DeviceStager {
 public:
  explicit DeviceStager(torch::Device device);

  // A device tensor on its way, usable once ready() is called for it.
  struct Upload {
    torch::Tensor tensor;
    std::shared_ptr<c10::Event> copied;  // null when the copy was synchronous (CPU)
  };

  // An empty host tensor in pinned memory when the device is a GPU (ordinary memory otherwise).
  torch::Tensor host_buffer(torch::IntArrayRef sizes, torch::ScalarType dtype) const;
  // Starts copying `host` to the device as `dtype`.
  Upload upload(const torch::Tensor& host, torch::ScalarType dtype);
  // Makes the compute stream wait for `u`'s copy; returns the tensor.
  torch::Tensor ready(const Upload& u) const;

  bool asynchronous() const { return side_.has_value(); }

 private:
  torch::Device device_;
  std::optional<c10::Stream> side_;
};

}  // namespace vidfuse
