#include "vidfuse/weights/torch_pickle.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <set>

#include "vidfuse/core/checked_math.h"
#include "vidfuse/core/error.h"
#include "vidfuse/core/mapped_file.h"
#include "vidfuse/core/quote.h"
#include "vidfuse/weights/pickle_vm.h"
#include "vidfuse/weights/zip_reader.h"

namespace vidfuse::weights {

namespace {

using pickle::Kind;
using pickle::PickleError;
using pickle::ValuePtr;

// torch.<X>Storage classes, named in persistent ids, give the element type.
const std::map<std::string, torch::ScalarType>& storage_dtypes() {
  static const std::map<std::string, torch::ScalarType> m = {
      {"FloatStorage", torch::kFloat},
      {"DoubleStorage", torch::kDouble},
      {"HalfStorage", torch::kHalf},
      {"BFloat16Storage", torch::kBFloat16},
      {"LongStorage", torch::kLong},
      {"IntStorage", torch::kInt},
      {"ShortStorage", torch::kShort},
      {"CharStorage", torch::kChar},
      {"ByteStorage", torch::kByte},
      {"BoolStorage", torch::kBool},
      {"ComplexFloatStorage", torch::kComplexFloat},
      {"ComplexDoubleStorage", torch::kComplexDouble},
  };
  return m;
}

// A root storage: one zip entry or one block after the legacy pickles. Its bytes are read only if
// some tensor of the state dict uses it.
struct StorageRecord {
  std::string key;
  torch::ScalarType dtype;
  int64_t numel = 0;
  torch::Tensor data;  // 1-D, numel elements, once read
  bool seen = false;   // legacy: its data block has been passed
};

// What a persistent id stands for: a root storage or (legacy) a view of one.
struct StorageRef : pickle::Opaque {
  std::shared_ptr<StorageRecord> root;
  int64_t offset = 0, numel = 0;  // the viewed elements of root
};

// A tensor described by the pickle, materialized once its storage is read.
struct TensorRef : pickle::Opaque {
  StorageRef storage;
  int64_t offset = 0;  // in elements, relative to the (view) storage
  std::vector<int64_t> size, stride;
};

// An object whose contents never matter for a state dict (argparse.Namespace in training
// checkpoints): built, then ignored.
struct InertObject : pickle::Opaque {};

std::string text_of(const ValuePtr& v, const char* what) {
  // Python 2 pickles may give bytes where Python 3 gives str.
  if (v->is(Kind::String) || v->is(Kind::Bytes)) return v->str;
  throw PickleError(std::string(what) + " is a " + pickle::kind_name(v->kind) + ", not a string");
}

int64_t int_of(const ValuePtr& v, const char* what) {
  if (v->is(Kind::Int)) return v->integer;
  throw PickleError(std::string(what) + " is a " + pickle::kind_name(v->kind) + ", not an int");
}

std::vector<int64_t> ints_of(const ValuePtr& v, const char* what) {
  if (!v->is(Kind::Tuple) && !v->is(Kind::List))
    throw PickleError(std::string(what) + " is a " + pickle::kind_name(v->kind) + ", not a tuple");
  std::vector<int64_t> out;
  for (const auto& item : v->items) {
    const int64_t x = int_of(item, what);
    if (x < 0) throw PickleError(std::string(what) + " holds a negative value");
    out.push_back(x);
  }
  return out;
}

template <class T>
std::shared_ptr<T> object_of(const ValuePtr& v) {
  return v->is(Kind::Object) ? std::dynamic_pointer_cast<T>(v->object) : nullptr;
}

// The Python side of torch.load, restricted to what state dicts contain.
class TorchHooks : public pickle::PickleHooks {
 public:
  pickle::Unpickler* vm = nullptr;  // set before any pickle runs; makes containers
  std::map<std::string, std::shared_ptr<StorageRecord>> storages;

  ValuePtr find_class(const std::string& module, const std::string& name) override {
    const std::string full = module + "." + name;
    static const std::set<std::string> allowed = {
        "collections.OrderedDict",
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_parameter",
        "torch._utils._rebuild_parameter_with_state",
        "torch.nn.parameter.Parameter",
        "torch.Size",
        "argparse.Namespace",
    };
    const bool storage_class =
        (module == "torch" || module == "torch.cuda") && storage_dtypes().count(name);
    if (!allowed.count(full) && !storage_class) {
      std::string hint;
      if (module.rfind("__torch__", 0) == 0)
        hint = " (a TorchScript archive: save model.state_dict() with torch.save instead)";
      else if (module.rfind("torch.nn.modules", 0) == 0 || module.rfind("torch.nn", 0) == 0)
        hint = " (a whole pickled nn.Module: save model.state_dict() instead)";
      throw PickleError("refuses the global " + quoted_short(full) +
                        ": only state dicts of tensors are read" + hint);
    }
    auto v = vm->make(Kind::Global);
    v->str = module;
    v->name = name;
    return v;
  }

  ValuePtr call(const ValuePtr& callable, const ValuePtr& args, bool newobj) override {
    if (!callable->is(Kind::Global))
      throw PickleError(std::string("calls a ") + pickle::kind_name(callable->kind) +
                        ", not a class or function");
    const std::string full = callable->str + "." + callable->name;
    const auto& a = args->items;
    auto arity = [&](size_t lo, size_t hi) {
      if (a.size() < lo || a.size() > hi)
        throw PickleError(full + " called with " + std::to_string(a.size()) + " arguments");
    };
    if (full == "collections.OrderedDict") {
      arity(0, 0);
      return vm->make(Kind::Dict);
    }
    if (full == "torch._utils._rebuild_tensor_v2") {
      // (storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
      arity(6, 7);
      return rebuild_tensor(full, a);
    }
    if (full == "torch._utils._rebuild_tensor") {  // PyTorch 0.3: (storage, offset, size, stride)
      arity(4, 4);
      return rebuild_tensor(full, a);
    }
    if (full == "torch._utils._rebuild_parameter" ||
        full == "torch._utils._rebuild_parameter_with_state" ||
        full == "torch.nn.parameter.Parameter") {
      arity(1, 4);
      if (!object_of<TensorRef>(a[0])) throw PickleError(full + " of something not a tensor");
      return a[0];  // a parameter is its data for a state dict
    }
    if (full == "torch.Size") {
      arity(1, 1);
      ints_of(a[0], "torch.Size");
      return a[0];
    }
    if (full == "argparse.Namespace") {
      auto v = vm->make(Kind::Object);
      v->name = full;
      v->object = std::make_shared<InertObject>();
      return v;
    }
    throw PickleError(full + " cannot be called");
  }

  void build(const ValuePtr& object, const ValuePtr& state) override {
    // A state dict's _metadata (per-module versions), a Namespace's fields, a tensor's Python
    // attributes: none of it changes the tensors.
    if (object->is(Kind::Dict) || object_of<InertObject>(object) || object_of<TensorRef>(object))
      return;
    throw PickleError(std::string("BUILD on a ") + pickle::kind_name(object->kind));
  }

  // ('storage', storage_type, key, location, numel[, view_metadata]); the zip format has no
  // view_metadata, the legacy one has None or (view_key, offset, view_numel).
  ValuePtr persistent_load(const ValuePtr& pid) override {
    if (!pid->is(Kind::Tuple) || pid->items.empty())
      throw PickleError("persistent id is not a tuple");
    const auto& p = pid->items;
    const std::string type = text_of(p[0], "persistent id type");
    if (type == "module")
      throw PickleError(
          "the checkpoint pickles a whole nn.Module; save model.state_dict() instead");
    if (type != "storage") throw PickleError("unknown persistent id type " + quoted_short(type));
    if (p.size() != 5 && p.size() != 6)
      throw PickleError("storage persistent id has " + std::to_string(p.size()) + " fields");
    if (!p[1]->is(Kind::Global) || !storage_dtypes().count(p[1]->name))
      throw PickleError("storage persistent id names no storage type");
    const torch::ScalarType dtype = storage_dtypes().at(p[1]->name);
    const std::string key = text_of(p[2], "storage key");
    text_of(p[3], "storage location");  // any device: everything is loaded to the CPU
    const int64_t numel = int_of(p[4], "storage size");
    if (numel < 0) throw PickleError("storage " + quoted_short(key) + " has a negative size");

    auto& root = storages[key];
    if (!root) {
      root = std::make_shared<StorageRecord>();
      root->key = key;
      root->dtype = dtype;
      root->numel = numel;
    } else if (root->dtype != dtype || root->numel != numel) {
      throw PickleError("storage " + quoted_short(key) +
                        " is named with two different types or sizes");
    }
    auto ref = std::make_shared<StorageRef>();
    ref->root = root;
    ref->numel = numel;
    if (p.size() == 6 && !p[5]->is(Kind::None)) {
      const auto& view = p[5];
      if (!view->is(Kind::Tuple) || view->items.size() != 3)
        throw PickleError("storage " + quoted_short(key) + " has malformed view metadata");
      ref->offset = int_of(view->items[1], "storage view offset");
      ref->numel = int_of(view->items[2], "storage view size");
      if (ref->offset < 0 || ref->numel < 0 || ref->offset > numel ||
          ref->numel > numel - ref->offset)
        throw PickleError("storage view lies outside storage " + quoted_short(key));
    }
    auto v = vm->make(Kind::Object);
    v->name = "storage";
    v->object = ref;
    return v;
  }

 private:
  ValuePtr rebuild_tensor(const std::string& fn, const std::vector<ValuePtr>& a) {
    auto storage = object_of<StorageRef>(a[0]);
    if (!storage) throw PickleError(fn + ": first argument is not a storage");
    auto t = std::make_shared<TensorRef>();
    t->storage = *storage;
    t->offset = int_of(a[1], "storage offset");
    t->size = ints_of(a[2], "tensor size");
    t->stride = ints_of(a[3], "tensor stride");
    if (t->offset < 0) throw PickleError(fn + ": negative storage offset");
    if (t->size.size() != t->stride.size())
      throw PickleError(fn + ": size and stride have different lengths");
    auto v = vm->make(Kind::Object);
    v->name = "tensor";
    v->object = t;
    return v;
  }
};

// The dict that holds the tensors: the root, or one nested under a conventional key.
pickle::Value* find_state_dict(pickle::Value& v, int depth) {
  if (!v.is(Kind::Dict) || depth > 4) return nullptr;
  for (const char* key : {"state_dict", "model_state_dict", "model", "module", "net", "network"})
    if (auto child = v.get(key))
      if (auto* found = find_state_dict(*child, depth + 1)) return found;
  for (const auto& [k, val] : v.entries)
    if (k->is(Kind::String) && object_of<TensorRef>(val)) return &v;
  return nullptr;
}

std::string describe_top_level(const pickle::Value& v) {
  if (!v.is(Kind::Dict)) return std::string("a ") + pickle::kind_name(v.kind);
  std::string keys;
  size_t n = 0;
  for (const auto& [k, val] : v.entries) {
    if (n++ == 8) {
      keys += ", ...";
      break;
    }
    if (!keys.empty()) keys += ", ";
    keys += k->is(Kind::String) ? quoted_short(k->str) : pickle::kind_name(k->kind);
  }
  return "a dict with keys [" + keys + "]";
}

using Refs = std::vector<std::pair<std::string, std::shared_ptr<TensorRef>>>;

// Runs the object pickle's result through state-dict selection, before the unpickler (and with it
// every container) is gone.
Refs collect_tensors(const std::string& path, const ValuePtr& root) {
  pickle::Value* sd = find_state_dict(*root, 0);
  if (!sd)
    fail_file(path,
              "holds no state dict of tensors (the pickle is " + describe_top_level(*root) + ")");
  Refs refs;
  for (const auto& [k, val] : sd->entries)
    if (auto t = object_of<TensorRef>(val); t && k->is(Kind::String)) {
      // torch.load decodes names as UTF-8 too; and only UTF-8 names can be written back out.
      if (!is_valid_utf8(k->str))
        fail_file(path, "tensor name " + quoted_short(k->str) + " is not valid UTF-8");
      refs.emplace_back(k->str, t);
    }
  return refs;
}

// Fills `record` from `bytes` (nbytes of raw little-endian elements).
void fill_storage(const std::string& path, StorageRecord& record, const uint8_t* bytes,
                  uint64_t nbytes) {
  const int64_t esize = static_cast<int64_t>(c10::elementSize(record.dtype));
  if (record.numel > static_cast<int64_t>(nbytes / esize) ||
      static_cast<uint64_t>(record.numel * esize) != nbytes)
    fail_file(path, "storage " + quoted_short(record.key) + " holds " + std::to_string(nbytes) +
                        " bytes, but " + std::to_string(record.numel) + " elements of " +
                        c10::toString(record.dtype) + " were declared");
  if (record.dtype == torch::kBool)
    for (uint64_t i = 0; i < nbytes; ++i)
      if (bytes[i] > 1)
        fail_file(path,
                  "bool storage " + quoted_short(record.key) + " holds a value other than 0/1");
  record.data = torch::empty({record.numel}, torch::TensorOptions().dtype(record.dtype));
  if (nbytes) std::memcpy(record.data.data_ptr(), bytes, nbytes);
}

// `file_bytes`: the size of the whole file, the most a tensor read from it may expand to.
TensorMap materialize(const std::string& path, const Refs& refs, uint64_t file_bytes) {
  TensorMap out;
  for (const auto& [name, t] : refs) {
    const StorageRecord& root = *t->storage.root;
    const std::string tensor = "tensor " + quoted_short(name);
    if (!root.data.defined())
      fail_file(path, tensor + ": storage " + quoted_short(root.key) + " has no data");
    const std::optional<int64_t> numel = checked_numel(t->size);
    if (!numel)
      fail_file(path, tensor + " has shape " + c10::str(c10::IntArrayRef(t->size)) +
                          ", more elements than a 64-bit size can count");
    // A view may repeat elements (stride 0, as expand() saves), but one that would expand to
    // more bytes than the whole file holds is refused before anything copies it.
    const int64_t esize = static_cast<int64_t>(c10::elementSize(root.dtype));
    const std::optional<int64_t> nbytes = checked_mul<int64_t>(*numel, esize);
    if (*numel > t->storage.numel && (!nbytes || static_cast<uint64_t>(*nbytes) > file_bytes))
      fail_file(path, tensor + " has shape " + c10::str(c10::IntArrayRef(t->size)) + " (" +
                          std::to_string(*numel) + " elements) over a storage of " +
                          std::to_string(t->storage.numel) +
                          ": repeated strides would expand it past the file's " +
                          std::to_string(file_bytes) + " bytes");
    // Every element the view can reach must lie inside its storage.
    const bool empty = *numel == 0;
    int64_t last = 0;
    bool overflow = false;
    for (size_t d = 0; d < t->size.size(); ++d) {
      int64_t span = 0;
      overflow |= __builtin_mul_overflow(t->size[d] > 0 ? t->size[d] - 1 : 0, t->stride[d], &span);
      overflow |= __builtin_add_overflow(last, span, &last);
    }
    overflow |= __builtin_add_overflow(last, t->offset, &last);
    if (overflow || (!empty && last >= t->storage.numel))
      fail_file(path, tensor + " reaches past the end of its storage " + quoted_short(root.key));
    if (empty) {
      out[name] = torch::empty(t->size, torch::TensorOptions().dtype(root.dtype));
      continue;
    }
    out[name] = root.data.as_strided(t->size, t->stride, t->storage.offset + t->offset);
  }
  // DataParallel saves every key under "module.".
  const std::string prefix = "module.";
  const bool all_prefixed =
      !out.empty() && std::all_of(out.begin(), out.end(),
                                  [&](const auto& kv) { return kv.first.rfind(prefix, 0) == 0; });
  if (!all_prefixed) return out;
  TensorMap stripped;
  for (auto& [name, tensor] : out) stripped.emplace(name.substr(prefix.size()), tensor);
  return stripped;
}

// True if `v` is torch's legacy magic number 0x1950a86a20f9469cfc6c.
bool is_magic_number(const pickle::Value& v) {
  static const std::string magic = {'\x6c', '\xfc', '\x9c', '\x46', '\xf9',
                                    '\x20', '\x6a', '\xa8', '\x50', '\x19'};
  return v.is(Kind::BigInt) && v.str == magic;
}

TensorMap read_zip(const std::string& path, const uint8_t* data, size_t size) {
  ZipReader zip(data, size, path);
  const ZipEntry* pkl = nullptr;
  for (const auto& e : zip.entries()) {
    const size_t slash = e.name.find('/');
    if (slash != std::string::npos && e.name.substr(slash + 1) == "data.pkl") {
      if (pkl) fail_file(path, "zip archive holds more than one data.pkl");
      pkl = &e;
    }
  }
  if (!pkl) fail_file(path, "zip archive has no <name>/data.pkl: not a torch.save checkpoint");
  const std::string prefix = pkl->name.substr(0, pkl->name.size() - std::string("data.pkl").size());
  if (const ZipEntry* order = zip.find(prefix + "byteorder"))
    if (zip.read(*order) != "little")
      fail_file(path, "storages are big-endian ('byteorder' record); only little-endian is read");

  const std::string_view pkl_bytes = zip.read(*pkl);
  TorchHooks hooks;
  pickle::Unpickler unpickler(hooks, path);
  hooks.vm = &unpickler;
  const ValuePtr root = unpickler.load(reinterpret_cast<const uint8_t*>(pkl_bytes.data()),
                                       pkl_bytes.size(), pkl->name);
  Refs refs = collect_tensors(path, root);

  for (const auto& [name, t] : refs) {
    StorageRecord& rec = *t->storage.root;
    if (rec.data.defined()) continue;
    const ZipEntry* entry = zip.find(prefix + "data/" + rec.key);
    if (!entry)
      fail_file(path, "zip archive lacks the entry " + quoted_short(prefix + "data/" + rec.key) +
                          " of tensor " + quoted_short(name));
    const std::string_view bytes = zip.read(*entry);
    fill_storage(path, rec, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  }
  return materialize(path, refs, size);
}

TensorMap read_legacy(const std::string& path, const uint8_t* data, size_t size) {
  TorchHooks hooks;
  pickle::Unpickler unpickler(hooks, path);
  hooks.vm = &unpickler;
  size_t pos = 0;
  auto next = [&](const char* part) {
    size_t used = 0;
    ValuePtr v = unpickler.load(data + pos, size - pos, part, &used);
    pos += used;
    return v;
  };

  if (!is_magic_number(*next("magic number pickle")))
    fail_file(path, "a pickle, but not a PyTorch checkpoint (no torch.save magic number)");
  const ValuePtr version = next("protocol version pickle");
  if (!version->is(Kind::Int) || version->integer != 1001)
    fail_file(path, "unsupported legacy serialization protocol (expected 1001)");
  const ValuePtr sys_info = next("sys_info pickle");
  if (!sys_info->is(Kind::Dict)) fail_file(path, "sys_info pickle is not a dict");
  if (auto le = sys_info->get("little_endian"); le && le->is(Kind::Bool) && !le->boolean)
    fail_file(path, "saved on a big-endian machine; only little-endian storages are read");
  Refs refs = collect_tensors(path, next("object pickle"));

  std::set<const StorageRecord*> needed;  // optimizer state etc. is skipped, not copied
  for (const auto& [name, t] : refs) needed.insert(t->storage.root.get());
  const ValuePtr keys = next("storage keys pickle");
  if (!keys->is(Kind::List)) fail_file(path, "storage keys pickle is not a list");
  // Then, per key in that order: an 8-byte little-endian element count and the raw elements.
  for (const auto& key_value : keys->items) {
    if (!key_value->is(Kind::String) && !key_value->is(Kind::Bytes))
      fail_file(path, "storage keys pickle holds a non-string");
    const std::string& key = key_value->str;
    auto it = hooks.storages.find(key);
    if (it == hooks.storages.end())
      fail_file(path, "storage " + quoted_short(key) + " is listed but never used");
    StorageRecord& rec = *it->second;
    if (size - pos < 8)
      fail_file(path, "truncated before the data of storage " + quoted_short(key));
    uint64_t count = 0;
    for (int i = 7; i >= 0; --i) count = (count << 8) | data[pos + i];
    pos += 8;
    if (count != static_cast<uint64_t>(rec.numel))
      fail_file(path, "storage " + quoted_short(key) + " holds " + std::to_string(count) +
                          " elements, " + std::to_string(rec.numel) + " were declared");
    const uint64_t esize = c10::elementSize(rec.dtype);
    if (count > (size - pos) / esize)
      fail_file(path, "truncated inside the data of storage " + quoted_short(key));
    if (rec.seen) fail_file(path, "storage " + quoted_short(key) + " is listed twice");
    rec.seen = true;
    if (needed.count(&rec)) fill_storage(path, rec, data + pos, count * esize);
    pos += count * esize;
  }
  return materialize(path, refs, size);
}

}  // namespace

bool is_zip_checkpoint(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[4] = {};
  in.read(head, 4);
  return in.gcount() == 4 && std::memcmp(head, "PK\x03\x04", 4) == 0;
}

TensorMap read_torch_checkpoint(const std::string& path) {
  const MappedFile file(path);
  return read_torch_checkpoint_from_memory(
      path, std::string_view(reinterpret_cast<const char*>(file.data()), file.size()));
}

TensorMap read_torch_checkpoint_from_memory(const std::string& path, std::string_view bytes) {
  const auto* d = reinterpret_cast<const uint8_t*>(bytes.data());
  const size_t n = bytes.size();
  if (n == 0) fail_file(path, "empty file, not a PyTorch checkpoint");
  try {
    if (n >= 4 && std::memcmp(d, "PK\x03\x04", 4) == 0) return read_zip(path, d, n);
    if (d[0] == 0x80) return read_legacy(path, d, n);  // a pickle's PROTO opcode
    if (n > 262 && std::memcmp(d + 257, "ustar", 5) == 0)
      fail_file(path, "a tar archive: PyTorch < 0.1.10 checkpoints are not supported");
    fail_file(path, "not a PyTorch checkpoint (neither a zip archive nor a pickle)");
  } catch (const c10::Error& e) {
    // Everything is validated before LibTorch sees it; this is a last line of defence.
    fail_file(path, std::string("LibTorch rejected the data: ") + e.what_without_backtrace());
  }
}

}  // namespace vidfuse::weights
