#include "vidfuse/data/store_dataset.h"

#include "vidfuse/core/error.h"
#include "vidfuse/core/shape_text.h"
#include "vidfuse/data/store_reader.h"
#include "vidfuse/data/store_schema.h"
#include "vidfuse/weights/safetensors.h"

namespace vidfuse::data {

StoreDataset::StoreDataset(const std::string& store_dir, const Manifest& manifest, bool semantic,
                           bool motion, bool stored_dtype)
    : store_dir_(store_dir),
      class_names_(manifest.class_names),
      semantic_(semantic),
      motion_(motion),
      stored_dtype_(stored_dtype) {
  if (!semantic && !motion) throw Error("StoreDataset: at least one stream must be selected");
  reader_ = std::make_shared<const StoreReader>(store_dir);
  for (const auto& v : manifest.videos) {
    if (reader_->contains(v.id))
      videos_.push_back(v);
    else
      ++missing_;
  }
  checked_.reset(new std::atomic<bool>[videos_.size()]);
  for (size_t i = 0; i < videos_.size(); ++i) checked_[i].store(false);
}

StoreDataset::~StoreDataset() = default;

std::string StoreDataset::where(int64_t index) const { return reader_->where(entry(index).id); }

Sample StoreDataset::get(int64_t index) const {
  if (index < 0 || index >= size())
    throw Error("StoreDataset: index " + std::to_string(index) + " out of range [0, " +
                std::to_string(size()) + ")");
  const VideoEntry& v = videos_[static_cast<size_t>(index)];
  // One read of the video's bytes; the tensors are views of them (a fresh buffer per call:
  // nothing shared between threads).
  const auto file = reader_->open(v.id);
  const bool check = !checked_[static_cast<size_t>(index)].load(std::memory_order_relaxed);
  auto load = [&](const std::string& name) {
    if (!file->contains(name))
      fail_file(file->path(),
                "no tensor '" + name + "' (was the store extracted with this stream?)");
    torch::Tensor t = file->get(name, /*zero_copy=*/true);
    if (check && !all_finite(t))
      fail_file(file->path(), "tensor '" + name + "' " + shape_text(t) +
                                  " holds NaN or infinite values (damaged features; `vidfuse "
                                  "store verify` lists every such file)");
    return stored_dtype_ ? t : t.to(torch::kFloat32, false, /*copy=*/true);
  };
  Sample s;
  if (semantic_) {
    s.semantic = load(kSemanticPatch);
    s.semantic_cls = load(kSemanticCls);
  }
  if (motion_) s.motion = load(mixed_5c_tensor(Stream::Motion));
  s.label = v.label;
  s.source = file->path();
  if (check) {
    std::vector<std::vector<int64_t>> shapes;
    for (const auto* t : {&s.semantic, &s.semantic_cls, &s.motion})
      shapes.push_back(t->defined() ? t->sizes().vec() : std::vector<int64_t>{});
    std::lock_guard<std::mutex> lock(reference_mutex_);
    if (reference_where_.empty()) {
      reference_shapes_ = shapes;
      reference_where_ = file->path();
    } else if (shapes != reference_shapes_) {
      const char* names[] = {"semantic.patch", "semantic.cls", "motion.mixed_5c"};
      for (size_t k = 0; k < shapes.size(); ++k)
        if (shapes[k] != reference_shapes_[k])
          fail_file(file->path(), std::string("tensor '") + names[k] + "' has shape " +
                                      shape_text(shapes[k]) + " but " + reference_where_ + " has " +
                                      shape_text(reference_shapes_[k]) +
                                      " (the store's files disagree: `vidfuse store verify` "
                                      "lists the odd ones)");
    }
  }
  if (check) checked_[static_cast<size_t>(index)].store(true, std::memory_order_relaxed);
  return s;
}

bool StoreDataset::read_into(int64_t index, Sample& out) const {
  if (index < 0 || index >= size())
    throw Error("StoreDataset: index " + std::to_string(index) + " out of range [0, " +
                std::to_string(size()) + ")");
  const VideoEntry& v = videos_[static_cast<size_t>(index)];
  const StoreReader::Span span = reader_->span(v.id);
  // The header only, read into a buffer of the file's full size (left uninitialised past it), so
  // that SafetensorsFile validates every tensor's offsets against the true size. The buffer is the
  // thread's own and reused (nothing taken from it outlives this call): a fresh 2 MB allocation
  // per sample would be an mmap/munmap pair, and munmap's TLB shootdowns stall every reader.
  thread_local torch::Tensor scratch;
  if (!scratch.defined() || scratch.numel() < static_cast<int64_t>(span.size()))
    scratch = torch::empty({static_cast<int64_t>(span.size())}, torch::kUInt8);
  torch::Tensor buf = scratch.narrow(0, 0, static_cast<int64_t>(span.size()));
  uint8_t* p = buf.data_ptr<uint8_t>();
  const uint64_t first = std::min<uint64_t>(span.size(), 4096);
  span.read(p, first, 0);
  uint64_t header = 0;
  if (first >= 8) {
    for (int i = 7; i >= 0; --i) header = (header << 8) | p[i];
    if (header <= span.size() - 8 && 8 + header > first)
      span.read(p + first, 8 + header - first, first);
  }
  const weights::SafetensorsFile file(span.where(), buf);
  reader_->check_id(file, v.id);
  std::vector<std::pair<std::string, torch::Tensor*>> wanted;
  if (semantic_) wanted = {{kSemanticPatch, &out.semantic}, {kSemanticCls, &out.semantic_cls}};
  if (motion_) wanted.push_back({mixed_5c_tensor(Stream::Motion), &out.motion});
  for (const auto& [name, slot] : wanted) {
    if (!file.contains(name) || !slot->defined() || !slot->is_contiguous()) return false;
    const auto& info = file.info(name);
    if (info.dtype != slot->scalar_type() || slot->sizes() != c10::IntArrayRef(info.shape))
      return false;
  }
  const bool check = !checked_[static_cast<size_t>(index)].load(std::memory_order_relaxed);
  for (const auto& [name, slot] : wanted) {
    const auto& info = file.info(name);
    span.read(slot->data_ptr(), info.end - info.begin, 8 + header + info.begin);
    if (check && !all_finite(*slot))
      fail_file(file.path(), "tensor '" + name + "' " + shape_text(*slot) +
                                 " holds NaN or infinite values (damaged features; `vidfuse "
                                 "store verify` lists every such file)");
  }
  out.label = v.label;
  out.source = span.where();
  if (check) checked_[static_cast<size_t>(index)].store(true, std::memory_order_relaxed);
  return true;
}

}  // namespace vidfuse::data
