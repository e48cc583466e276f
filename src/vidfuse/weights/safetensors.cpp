#include "vidfuse/weights/safetensors.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <ostream>

#include "vidfuse/core/atomic_file.h"
#include "vidfuse/core/checked_math.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/json_file.h"
#include "vidfuse/core/mapped_file.h"
#include "vidfuse/core/quote.h"

namespace vidfuse::weights {

namespace {

// Headers larger than this are not safetensors (the format itself caps them at 100 MB).
constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

const std::vector<std::pair<std::string, torch::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, torch::ScalarType>> table = {
      {"F64", torch::kFloat64},   {"F32", torch::kFloat32}, {"F16", torch::kFloat16},
      {"BF16", torch::kBFloat16}, {"I64", torch::kInt64},   {"I32", torch::kInt32},
      {"I16", torch::kInt16},     {"I8", torch::kInt8},     {"U8", torch::kUInt8},
      {"BOOL", torch::kBool},
  };
  return table;
}

uint64_t read_le_u64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

std::string dtype_name(torch::ScalarType dtype) {
  for (const auto& [name, type] : dtype_table())
    if (type == dtype) return name;
  throw Error(std::string("safetensors: no dtype name for ") + c10::toString(dtype));
}

torch::ScalarType dtype_from_name(const std::string& name) {
  for (const auto& [n, type] : dtype_table())
    if (n == name) return type;
  throw Error("unknown safetensors dtype " + quoted_short(name));
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path) {
  file_.emplace(path);
  parse_(file_->data(), file_->size());
}

SafetensorsFile::SafetensorsFile(const std::string& name, torch::Tensor bytes)
    : path_(name), bytes_(std::move(bytes)) {
  if (bytes_.scalar_type() != torch::kUInt8 || bytes_.dim() != 1 || !bytes_.is_contiguous() ||
      !bytes_.device().is_cpu())
    throw Error(name + ": SafetensorsFile wants the file as a contiguous 1-D uint8 CPU tensor");
  parse_(bytes_.data_ptr<uint8_t>(), static_cast<size_t>(bytes_.numel()));
}

void SafetensorsFile::parse_(const uint8_t* bytes, const size_t size) {
  const std::string& path = path_;
  if (size < 8)
    fail_file(path, "truncated safetensors file: " + std::to_string(size) +
                        " bytes, shorter than the 8-byte header length");
  const uint64_t header_len = read_le_u64(bytes);
  if (header_len > kMaxHeaderBytes || header_len > size - 8)
    fail_file(path, "header length " + std::to_string(header_len) + " runs past the end of the " +
                        std::to_string(size) + "-byte file (truncated or not safetensors)");
  data_ = bytes + 8 + header_len;
  const size_t data_size = size - 8 - header_len;

  const nlohmann::json header = parse_json_text(
      std::string_view(reinterpret_cast<const char*>(bytes + 8), header_len), path + ": header");
  if (!header.is_object()) fail_file(path, "header is not a JSON object");

  std::vector<std::pair<std::pair<size_t, size_t>, std::string>> ranges;
  for (auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) fail_file(path, "__metadata__ is not an object");
      for (auto& [k, v] : entry.items()) {
        if (!v.is_string())
          fail_file(path, "__metadata__[" + quoted_short(k) + "] is not a string");
        metadata_[k] = v.get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor " + quoted_short(name);
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      fail_file(path, where + ": entry needs dtype, shape and data_offsets");
    if (!entry["dtype"].is_string()) fail_file(path, where + ": dtype is not a string");
    TensorInfo info;
    try {
      info.dtype = dtype_from_name(entry["dtype"].get<std::string>());
    } catch (const Error& e) {
      fail_file(path, where + ": " + e.what());
    }
    const auto& shape = entry["shape"];
    const auto& offsets = entry["data_offsets"];
    if (!shape.is_array()) fail_file(path, where + ": shape is not an array");
    for (const auto& d : shape) {
      if (!d.is_number_unsigned() || d.get<uint64_t>() > uint64_t{INT64_MAX})
        fail_file(path, where + ": shape has a non-integer, negative or too large dim");
      info.shape.push_back(static_cast<int64_t>(d.get<uint64_t>()));
    }
    // Checked: elements x element size must not wrap before it is compared with the bytes held.
    const std::optional<int64_t> nbytes =
        checked_nbytes(info.shape, static_cast<int64_t>(c10::elementSize(info.dtype)));
    if (!nbytes)
      fail_file(path, where + ": shape " + c10::str(c10::IntArrayRef(info.shape)) +
                          " has more bytes than a 64-bit size can count");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail_file(path, where + ": data_offsets must be two non-negative integers");
    const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > data_size)
      fail_file(path, where + ": data_offsets [" + std::to_string(begin) + ", " +
                          std::to_string(end) + ") out of range of the " +
                          std::to_string(data_size) + "-byte data section (truncated file?)");
    const uint64_t expected = static_cast<uint64_t>(*nbytes);
    if (end - begin != expected)
      fail_file(path, where + ": holds " + std::to_string(end - begin) + " bytes but shape " +
                          c10::str(c10::IntArrayRef(info.shape)) + " of " +
                          entry["dtype"].get<std::string>() + " needs " + std::to_string(expected));
    info.begin = begin;
    info.end = end;
    ranges.push_back({{begin, end}, name});
    infos_.emplace(name, std::move(info));
  }
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].first.first < ranges[i - 1].first.second)
      fail_file(path, "tensors " + quoted_short(ranges[i - 1].second) + " and " +
                          quoted_short(ranges[i].second) + " overlap in the data section");
}

SafetensorsFile::~SafetensorsFile() = default;

std::vector<std::string> SafetensorsFile::keys() const {
  std::vector<std::string> out;
  for (const auto& [k, v] : infos_) out.push_back(k);
  return out;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = infos_.find(name);
  if (it == infos_.end()) fail_file(path_, "no tensor named " + quoted_short(name));
  return it->second;
}

torch::Tensor SafetensorsFile::get(const std::string& name, bool zero_copy) const {
  const TensorInfo& i = info(name);
  // from_blob wants a non-const pointer; the mapping is private and never written through.
  auto* ptr = const_cast<uint8_t*>(data_ + i.begin);
  if (bytes_.defined() && zero_copy) {
    const size_t offset = static_cast<size_t>(ptr - bytes_.data_ptr<uint8_t>());
    // A view of the in-memory file shares (and keeps alive) its storage; a tensor not aligned to
    // its element size cannot be viewed, and is copied.
    if ((static_cast<size_t>(bytes_.storage_offset()) + offset) % c10::elementSize(i.dtype) == 0)
      return bytes_.narrow(0, static_cast<int64_t>(offset), static_cast<int64_t>(i.end - i.begin))
          .view(i.dtype)
          .view(i.shape);
    zero_copy = false;
  }
  torch::Tensor view = torch::from_blob(ptr, i.shape, torch::TensorOptions().dtype(i.dtype));
  return zero_copy ? view : view.clone();
}

TensorMap load_safetensors(const std::string& path) {
  SafetensorsFile file(path);
  TensorMap out;
  for (const auto& key : file.keys()) out.emplace(key, file.get(key));
  return out;
}

TensorMap load_safetensors(const std::string& path, torch::ScalarType float_dtype) {
  SafetensorsFile file(path);
  TensorMap out;
  for (const auto& key : file.keys()) {
    torch::Tensor t = file.get(key, /*zero_copy=*/true);
    out.emplace(key, t.is_floating_point() ? t.to(float_dtype, false, /*copy=*/true) : t.clone());
  }
  return out;
}

Metadata load_safetensors_metadata(const std::string& path) {
  return SafetensorsFile(path).metadata();
}

void save_safetensors(const std::string& path, const TensorMap& tensors, const Metadata& metadata) {
  // JSON text must be UTF-8: say which name is not, rather than nlohmann's "byte at index 7".
  for (const auto& [name, tensor] : tensors)
    if (!is_valid_utf8(name))
      fail_file(path, "cannot write tensor name " + quoted_short(name) +
                          ": safetensors names must be valid UTF-8");
  for (const auto& [k, v] : metadata)
    if (!is_valid_utf8(k) || !is_valid_utf8(v))
      fail_file(path, "cannot write metadata " + quoted_short(k) + ": not valid UTF-8");
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> contiguous;
  size_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    torch::Tensor t = tensor.detach().to(torch::kCPU).contiguous();
    const size_t bytes = t.numel() * t.element_size();
    header[name] = {{"dtype", dtype_name(t.scalar_type())},
                    {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(t);
  }
  std::string text = header.dump();
  // Pad with spaces so the data section starts 8-byte aligned, as the reference writer does.
  text.append((8 - text.size() % 8) % 8, ' ');
  write_file_atomically(path, [&](std::ostream& out) {
    uint8_t len[8];
    uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), text.size());
    for (const auto& t : contiguous)
      out.write(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
  });
}

}  // namespace vidfuse::weights
