#include "vidfuse/weights/pickle_vm.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "vidfuse/core/error.h"

namespace vidfuse::weights::pickle {

namespace {

// Opcodes (CPython Lib/pickle.py). Text-mode opcodes of protocols 0/1 other than GLOBAL are not
// written by torch.save and are rejected as unsupported.
enum Op : uint8_t {
  MARK = '(',
  STOP = '.',
  POP = '0',
  POP_MARK = '1',
  DUP = '2',
  BINFLOAT = 'G',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BINSTRING = 'T',
  SHORT_BINSTRING = 'U',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  DICT = 'd',
  EMPTY_DICT = '}',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  LIST = 'l',
  EMPTY_LIST = ']',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  EMPTY_TUPLE = ')',
  SETITEMS = 'u',
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  PROTO = 0x80,
  NEWOBJ = 0x81,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  EMPTY_SET = 0x8f,
  ADDITEMS = 0x90,
  FROZENSET = 0x91,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

std::string describe_opcode(uint8_t op) {
  char buf[32];
  if (op >= 0x20 && op < 0x7f)
    std::snprintf(buf, sizeof buf, "0x%02x ('%c')", op, op);
  else
    std::snprintf(buf, sizeof buf, "0x%02x", op);
  return buf;
}

bool is_container(Kind k) { return k == Kind::Tuple || k == Kind::List || k == Kind::Dict; }

// A dedup key for dict keys that Python compares by value (str and int); others are not deduped.
bool dict_key(const Value& key, std::string* out) {
  if (key.kind == Kind::String) {
    *out = "s" + key.str;
    return true;
  }
  if (key.kind == Kind::Int) {
    *out = "i" + std::to_string(key.integer);
    return true;
  }
  return false;
}

void dict_set(Value& dict, ValuePtr key, ValuePtr value) {
  std::string k;
  if (dict_key(*key, &k)) {
    auto it = dict.entry_index.find(k);
    if (it != dict.entry_index.end()) {
      dict.entries[it->second].second = std::move(value);
      return;
    }
    dict.entry_index.emplace(std::move(k), dict.entries.size());
  }
  dict.entries.emplace_back(std::move(key), std::move(value));
}

// Reads little-endian fixed-width fields from a bounded buffer.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : data_(data), size_(size) {}
  size_t pos() const { return pos_; }
  bool done() const { return pos_ >= size_; }

  const uint8_t* take(uint64_t n) {
    if (n > size_ - pos_)
      throw PickleError("truncated: needs " + std::to_string(n) + " more bytes, only " +
                        std::to_string(size_ - pos_) + " left");
    const uint8_t* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint64_t uint(int bytes) {
    const uint8_t* p = take(bytes);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  std::string bytes(uint64_t n) {
    const uint8_t* p = take(n);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(n));
  }
  // A '\n'-terminated line (GLOBAL's operands), without the newline.
  std::string line() {
    const size_t max_len = 4096;  // module and class names are short
    for (size_t i = pos_; i < size_ && i - pos_ < max_len; ++i) {
      if (data_[i] == '\n') {
        std::string s(reinterpret_cast<const char*>(data_ + pos_), i - pos_);
        pos_ = i + 1;
        return s;
      }
    }
    throw PickleError("truncated or overlong text line");
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

}  // namespace

ValuePtr Value::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  auto it = entry_index.find("s" + key);
  return it == entry_index.end() ? nullptr : entries[it->second].second;
}

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "bool";
    case Kind::Int:
      return "int";
    case Kind::BigInt:
      return "int";
    case Kind::Float:
      return "float";
    case Kind::String:
      return "str";
    case Kind::Bytes:
      return "bytes";
    case Kind::Tuple:
      return "tuple";
    case Kind::List:
      return "list";
    case Kind::Dict:
      return "dict";
    case Kind::Global:
      return "global";
    case Kind::Object:
      return "object";
  }
  return "?";
}

Unpickler::Unpickler(PickleHooks& hooks, std::string file)
    : hooks_(hooks), file_(std::move(file)) {}

Unpickler::~Unpickler() {
  // Break every container->container edge first, so each container dies without recursing.
  for (auto& v : arena_) {
    v->items.clear();
    v->entries.clear();
  }
}

void Unpickler::charge(size_t bytes) {
  used_ += bytes;
  if (used_ > budget_)
    throw PickleError("builds more than " + std::to_string(budget_ >> 20) +
                      " MiB of objects, far more than its size allows a real checkpoint");
}

ValuePtr Unpickler::make(Kind kind) {
  charge(sizeof(Value) + 32);  // the value and its shared_ptr control block
  auto v = std::make_shared<Value>();
  v->kind = kind;
  if (is_container(kind)) arena_.push_back(v);
  return v;
}

ValuePtr Unpickler::load(const uint8_t* data, size_t size, const std::string& part,
                         size_t* consumed) {
  Reader in(data, size);
  // Legacy files pass everything after the previous pickle, storages included: generous, and
  // still bounded by what the file holds.
  budget_ = kBudgetBase + kBudgetPerByte * std::min<size_t>(size, SIZE_MAX / (2 * kBudgetPerByte));
  used_ = 0;
  std::vector<ValuePtr> stack;
  std::vector<size_t> marks;
  std::unordered_map<uint64_t, ValuePtr> memo;
  size_t op_pos = 0;

  auto pop = [&]() {
    if (stack.empty() || (!marks.empty() && stack.size() <= marks.back()))
      throw PickleError("stack underflow");
    ValuePtr v = std::move(stack.back());
    stack.pop_back();
    return v;
  };
  auto top = [&]() -> ValuePtr& {
    if (stack.empty() || (!marks.empty() && stack.size() <= marks.back()))
      throw PickleError("stack underflow");
    return stack.back();
  };
  // Pops everything above the topmost MARK, and the mark.
  auto pop_mark = [&]() {
    if (marks.empty()) throw PickleError("no MARK on the stack");
    const size_t m = marks.back();
    marks.pop_back();
    charge((stack.size() - m) * 2 * sizeof(ValuePtr));  // moved into a container
    std::vector<ValuePtr> items(std::make_move_iterator(stack.begin() + m),
                                std::make_move_iterator(stack.end()));
    stack.resize(m);
    return items;
  };
  auto scalar = [&](Kind k) { return make(k); };
  // Ints, None and bools are immutable (no opcode or hook changes a scalar), so one value per
  // number is shared: a state dict repeats a few sizes and strides thousands of times.
  std::unordered_map<int64_t, ValuePtr> ints;
  auto make_int = [&](int64_t v) {
    ValuePtr& r = ints[v];
    if (!r) {
      charge(64);  // the cache node
      r = scalar(Kind::Int);
      r->integer = v;
    }
    return r;
  };
  const ValuePtr none = scalar(Kind::None), yes = scalar(Kind::Bool), no = scalar(Kind::Bool);
  yes->boolean = true;
  auto make_str = [&](Kind k, std::string s) {
    charge(s.size());
    auto r = scalar(k);
    r->str = std::move(s);
    return r;
  };
  auto make_tuple = [&](std::vector<ValuePtr> items) {
    auto r = make(Kind::Tuple);
    r->items = std::move(items);
    return r;
  };
  auto expect = [&](const ValuePtr& v, Kind k, const char* what) {
    if (!v->is(k))
      throw PickleError(std::string(what) + " expects a " + kind_name(k) + ", got a " +
                        kind_name(v->kind));
  };
  auto memo_get = [&](uint64_t idx) {
    auto it = memo.find(idx);
    if (it == memo.end())
      throw PickleError("memo key " + std::to_string(idx) + " was never stored");
    return it->second;
  };
  // LONG1 / LONG4: little-endian two's complement of any width.
  auto make_long = [&](uint64_t n) {
    const uint8_t* p = in.take(n);
    if (n <= 8) {
      uint64_t v = 0;
      for (uint64_t i = n; i-- > 0;) v = (v << 8) | p[i];
      if (n > 0 && n < 8 && (p[n - 1] & 0x80)) v |= ~uint64_t{0} << (8 * n);  // sign-extend
      return make_int(static_cast<int64_t>(v));
    }
    return make_str(Kind::BigInt, std::string(reinterpret_cast<const char*>(p), n));
  };

  try {
    while (true) {
      op_pos = in.pos();
      if (in.done()) throw PickleError("truncated: ended before STOP");
      // Every opcode pushes at most one entry (or one MARK), so checking here bounds both.
      if (stack.size() + marks.size() >= kMaxStack)
        throw PickleError("stack holds more than " + std::to_string(kMaxStack) +
                          " entries; no pickle written by Python grows so deep");
      const uint8_t op = *in.take(1);
      switch (op) {
        case PROTO: {
          const uint64_t proto = in.uint(1);
          if (proto > 5) throw PickleError("unsupported pickle protocol " + std::to_string(proto));
          break;
        }
        case FRAME:
          in.uint(8);
          break;  // framing is only a read-ahead hint
        case STOP: {
          ValuePtr result = pop();
          if (consumed) *consumed = in.pos();
          return result;
        }
        case MARK:
          marks.push_back(stack.size());
          break;
        case POP:
          pop();
          break;
        case POP_MARK:
          pop_mark();
          break;
        case DUP:
          stack.push_back(top());
          break;

        case NONE:
          stack.push_back(none);
          break;
        case NEWTRUE:
        case NEWFALSE: {
          stack.push_back(op == NEWTRUE ? yes : no);
          break;
        }
        case BININT:
          stack.push_back(make_int(static_cast<int32_t>(in.uint(4))));
          break;
        case BININT1:
          stack.push_back(make_int(static_cast<int64_t>(in.uint(1))));
          break;
        case BININT2:
          stack.push_back(make_int(static_cast<int64_t>(in.uint(2))));
          break;
        case LONG1:
          stack.push_back(make_long(in.uint(1)));
          break;
        case LONG4: {
          const int64_t n = static_cast<int32_t>(in.uint(4));
          if (n < 0) throw PickleError("negative LONG4 length");
          stack.push_back(make_long(static_cast<uint64_t>(n)));
          break;
        }
        case BINFLOAT: {
          const uint64_t bits = [&] {  // big-endian IEEE 754
            const uint8_t* p = in.take(8);
            uint64_t b = 0;
            for (int i = 0; i < 8; ++i) b = (b << 8) | p[i];
            return b;
          }();
          auto v = scalar(Kind::Float);
          std::memcpy(&v->real, &bits, sizeof bits);
          stack.push_back(v);
          break;
        }

        case BINUNICODE:
          stack.push_back(make_str(Kind::String, in.bytes(in.uint(4))));
          break;
        case SHORT_BINUNICODE:
          stack.push_back(make_str(Kind::String, in.bytes(in.uint(1))));
          break;
        case BINUNICODE8:
          stack.push_back(make_str(Kind::String, in.bytes(in.uint(8))));
          break;
        // Python 2 `str`: read as text, as torch.load does for the ASCII names it contains.
        case BINSTRING: {
          const int64_t n = static_cast<int32_t>(in.uint(4));
          if (n < 0) throw PickleError("negative BINSTRING length");
          stack.push_back(make_str(Kind::String, in.bytes(static_cast<uint64_t>(n))));
          break;
        }
        case SHORT_BINSTRING:
          stack.push_back(make_str(Kind::String, in.bytes(in.uint(1))));
          break;
        case BINBYTES:
          stack.push_back(make_str(Kind::Bytes, in.bytes(in.uint(4))));
          break;
        case SHORT_BINBYTES:
          stack.push_back(make_str(Kind::Bytes, in.bytes(in.uint(1))));
          break;
        case BINBYTES8:
          stack.push_back(make_str(Kind::Bytes, in.bytes(in.uint(8))));
          break;

        case EMPTY_TUPLE:
          stack.push_back(make(Kind::Tuple));
          break;
        case TUPLE:
          stack.push_back(make_tuple(pop_mark()));
          break;
        case TUPLE1:
        case TUPLE2:
        case TUPLE3: {
          const size_t n = op - TUPLE1 + 1;
          std::vector<ValuePtr> items(n);
          for (size_t i = n; i-- > 0;) items[i] = pop();
          stack.push_back(make_tuple(std::move(items)));
          break;
        }
        case EMPTY_LIST:
          stack.push_back(make(Kind::List));
          break;
        case LIST: {
          auto v = make(Kind::List);
          v->items = pop_mark();
          stack.push_back(v);
          break;
        }
        case APPEND: {
          ValuePtr item = pop();
          ValuePtr& list = top();
          expect(list, Kind::List, "APPEND");
          charge(2 * sizeof(ValuePtr));
          list->items.push_back(std::move(item));
          break;
        }
        case APPENDS: {
          auto items = pop_mark();
          ValuePtr& list = top();
          expect(list, Kind::List, "APPENDS");
          for (auto& item : items) list->items.push_back(std::move(item));
          break;
        }
        // Sets only occur in metadata we never look at; a list keeps them well enough.
        case EMPTY_SET:
          stack.push_back(make(Kind::List));
          break;
        case ADDITEMS: {
          auto items = pop_mark();
          ValuePtr& set = top();
          expect(set, Kind::List, "ADDITEMS");
          for (auto& item : items) set->items.push_back(std::move(item));
          break;
        }
        case FROZENSET:
          stack.push_back(make_tuple(pop_mark()));
          break;
        case EMPTY_DICT:
          stack.push_back(make(Kind::Dict));
          break;
        case DICT: {
          auto items = pop_mark();
          if (items.size() % 2) throw PickleError("DICT with an odd number of items");
          auto v = make(Kind::Dict);
          for (size_t i = 0; i < items.size(); i += 2) dict_set(*v, items[i], items[i + 1]);
          stack.push_back(v);
          break;
        }
        case SETITEM: {
          ValuePtr value = pop();
          ValuePtr key = pop();
          ValuePtr& dict = top();
          expect(dict, Kind::Dict, "SETITEM");
          charge(4 * sizeof(ValuePtr));
          dict_set(*dict, std::move(key), std::move(value));
          break;
        }
        case SETITEMS: {
          auto items = pop_mark();
          if (items.size() % 2) throw PickleError("SETITEMS with an odd number of items");
          ValuePtr& dict = top();
          expect(dict, Kind::Dict, "SETITEMS");
          for (size_t i = 0; i < items.size(); i += 2) dict_set(*dict, items[i], items[i + 1]);
          break;
        }

        case BINPUT:
          charge(64);  // a memo node
          memo[in.uint(1)] = top();
          break;
        case LONG_BINPUT:
          charge(64);
          memo[in.uint(4)] = top();
          break;
        case MEMOIZE: {
          charge(64);
          const uint64_t idx = memo.size();
          memo[idx] = top();
          break;
        }
        case BINGET:
          stack.push_back(memo_get(in.uint(1)));
          break;
        case LONG_BINGET:
          stack.push_back(memo_get(in.uint(4)));
          break;

        case GLOBAL: {
          std::string module = in.line();
          std::string name = in.line();
          stack.push_back(hooks_.find_class(module, name));
          break;
        }
        case STACK_GLOBAL: {
          ValuePtr name = pop();
          ValuePtr module = pop();
          expect(module, Kind::String, "STACK_GLOBAL");
          expect(name, Kind::String, "STACK_GLOBAL");
          stack.push_back(hooks_.find_class(module->str, name->str));
          break;
        }
        case REDUCE:
        case NEWOBJ: {
          ValuePtr args = pop();
          ValuePtr callable = pop();
          expect(args, Kind::Tuple, op == REDUCE ? "REDUCE" : "NEWOBJ");
          stack.push_back(hooks_.call(callable, args, op == NEWOBJ));
          break;
        }
        case BUILD: {
          ValuePtr state = pop();
          hooks_.build(top(), state);
          break;
        }
        case BINPERSID:
          stack.push_back(hooks_.persistent_load(pop()));
          break;

        default:
          throw PickleError("unsupported pickle opcode " + describe_opcode(op));
      }
    }
  } catch (const PickleError& e) {
    fail_file(file_, part + ": " + e.what() + " (opcode at byte " + std::to_string(op_pos) + ")");
  } catch (const std::bad_alloc&) {
    fail_file(file_, part + ": out of memory while unpickling (opcode at byte " +
                         std::to_string(op_pos) + ")");
  }
}

}  // namespace vidfuse::weights::pickle
