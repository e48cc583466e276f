// A minimal Python pickle virtual machine (the binary opcodes of protocols 2-5 that torch.save and
// Python 2/3 pickle writers emit), written so that no input can crash it: every read is
// bounds-checked, memo indices are looked up rather than indexed, and anything unknown is rejected.
// It knows nothing about PyTorch: globals, REDUCE/NEWOBJ/BUILD and persistent ids are delegated to
// PickleHooks, which decide what is allowed.
#pragma once
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace vidfuse::weights::pickle {

// Thrown by hooks (and internally); the VM rethrows it as vidfuse::Error with file and offset.
class PickleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Hook-defined payload of an Object value (a storage, a tensor description, ...).
struct Opaque {
  virtual ~Opaque() = default;
};

struct Value;
using ValuePtr = std::shared_ptr<Value>;

enum class Kind {
  None,
  Bool,
  Int,
  BigInt,
  Float,
  String,
  Bytes,
  Tuple,
  List,
  Dict,
  Global,
  Object
};

// A Python object. Containers have reference semantics (they are shared through the memo and
// mutated by APPEND/SETITEM), hence shared_ptr. Containers are only valid while their Unpickler
// lives: it breaks every reference between them when it is destroyed, so that cyclic or very deep
// structures from hostile input neither leak nor overflow the stack on destruction.
struct Value {
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string str;   // String, Bytes, BigInt (little-endian two's complement), Global module
  std::string name;  // Global name, Object type name
  std::vector<ValuePtr> items;                          // Tuple, List
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;   // Dict, in insertion order
  std::unordered_map<std::string, size_t> entry_index;  // Dict: str/int keys -> entries index
  std::shared_ptr<Opaque> object;                       // Object

  bool is(Kind k) const { return kind == k; }
  // The value for a string key of a Dict, or nullptr.
  ValuePtr get(const std::string& key) const;
};

const char* kind_name(Kind kind);

class PickleHooks {
 public:
  virtual ~PickleHooks() = default;
  // GLOBAL / STACK_GLOBAL: return a value standing for `module.name`, or throw PickleError.
  virtual ValuePtr find_class(const std::string& module, const std::string& name) = 0;
  // REDUCE (callable(*args)) and NEWOBJ (cls.__new__(cls, *args)); args is a Tuple.
  virtual ValuePtr call(const ValuePtr& callable, const ValuePtr& args, bool newobj) = 0;
  // BUILD: set `state` on `object` (e.g. the _metadata of a state dict).
  virtual void build(const ValuePtr& object, const ValuePtr& state) = 0;
  // BINPERSID.
  virtual ValuePtr persistent_load(const ValuePtr& pid) = 0;
};

class Unpickler {
 public:
  // `file` names the file in error messages; `part` the pickle inside it (e.g. "data.pkl").
  Unpickler(PickleHooks& hooks, std::string file);
  ~Unpickler();
  Unpickler(const Unpickler&) = delete;
  Unpickler& operator=(const Unpickler&) = delete;

  // Runs one pickle from data[0, size) up to its STOP; returns the result and sets `consumed` to
  // the bytes read. Throws vidfuse::Error "<file>: <part>: <problem> at byte N".
  ValuePtr load(const uint8_t* data, size_t size, const std::string& part,
                size_t* consumed = nullptr);

  // A new value; containers are owned by this unpickler (see Value). Counted against the memory
  // budget of the pickle being loaded.
  ValuePtr make(Kind kind);

  // Limits that keep hostile input from exhausting memory before it is refused. A pickle written
  // by Python stays far below them: its pickler recurses (nesting < 1000 levels) and batches
  // APPENDS/SETITEMS by 1000, so its stack holds a few thousand entries at most.
  static constexpr size_t kMaxStack = 1 << 16;  // stack entries, MARKs included
  // The values a pickle may build: a fixed allowance plus a multiple of its bytes. A real state
  // dict's data.pkl builds ~25 bytes of values per byte (ints shared); a hostile one (a tuple per
  // byte) up to ~250, and is refused at this budget with a clear error instead of a bad_alloc.
  static constexpr size_t kBudgetBase = 16ull << 20;
  static constexpr size_t kBudgetPerByte = 64;

 private:
  // Counts `bytes` more of values against the budget; throws PickleError past it.
  void charge(size_t bytes);

  PickleHooks& hooks_;
  std::string file_;
  std::vector<ValuePtr> arena_;  // every container ever made, to break cycles on destruction
  size_t budget_ = kBudgetBase, used_ = 0;  // of the current load()
};

}  // namespace vidfuse::weights::pickle
