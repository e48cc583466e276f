#include "vidfuse/core/device_stager.h"

#include <c10/core/DeviceGuard.h>
#include <c10/core/StreamGuard.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>

namespace vidfuse {

DeviceStager::DeviceStager(torch::Device device) : device_(device) {
  if (!device.is_cuda()) return;
  const auto* impl = c10::impl::getDeviceGuardImpl(device.type());
  const c10::Device exact(device.type(),
                          device.has_index() ? device.index() : impl->getDevice().index());
  device_ = exact;
  side_ = impl->getStreamFromGlobalPool(exact, /*isHighPriority=*/false);
}

torch::Tensor DeviceStager::host_buffer(torch::IntArrayRef sizes, torch::ScalarType dtype) const {
  return torch::empty(sizes, torch::TensorOptions().dtype(dtype).pinned_memory(asynchronous()));
}

DeviceStager::Upload DeviceStager::upload(const torch::Tensor& host, torch::ScalarType dtype) {
  if (!asynchronous()) return {host.to(device_, dtype), nullptr};
  // Only a pinned source makes the copy asynchronous; the dtype conversion runs on the GPU.
  const torch::Tensor src = host.is_pinned() ? host : host.pin_memory();
  c10::StreamGuard on_side(*side_);
  Upload u;
  u.tensor = src.to(device_, /*non_blocking=*/true).to(dtype);
  u.copied = std::make_shared<c10::Event>(device_.type());
  u.copied->record(*side_);
  return u;
}

torch::Tensor DeviceStager::ready(const Upload& u) const {
  if (!u.copied) return u.tensor;
  const auto* impl = c10::impl::getDeviceGuardImpl(device_.type());
  const c10::Stream compute = impl->getStream(device_);
  u.copied->block(compute);
  // The caching allocator must not hand the memory back to the side stream while compute uses it.
  u.tensor.record_stream(compute);
  return u.tensor;
}

}  // namespace vidfuse
