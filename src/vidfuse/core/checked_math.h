// Size arithmetic on values read from files, checked for overflow. A reader multiplies dims and
// element sizes that a hostile file chooses; a product that wraps (2^31 x 2^30 x 8 = 2^64 -> 0)
// would pass a "the file holds enough bytes" check, so every such product goes through here.
#pragma once
#include <cstdint>
#include <optional>

namespace vidfuse {

// a * b and a + b, or nullopt when the result does not fit T.
template <class T>
std::optional<T> checked_mul(T a, T b) {
  T out;
  if (__builtin_mul_overflow(a, b, &out)) return std::nullopt;
  return out;
}
template <class T>
std::optional<T> checked_add(T a, T b) {
  T out;
  if (__builtin_add_overflow(a, b, &out)) return std::nullopt;
  return out;
}

// The element count of a shape, or nullopt when a dim is negative or the product of the dims
// (the non-zero ones too, so [0, 2^62, 2^62] is refused as LibTorch's own size check would)
// overflows int64.
template <class Dims>
std::optional<int64_t> checked_numel(const Dims& dims) {
  int64_t product = 1;
  bool empty = false;
  for (auto d : dims) {
    const int64_t dim = static_cast<int64_t>(d);
    if (dim < 0) return std::nullopt;
    if (dim == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(product, dim, &product)) return std::nullopt;
  }
  return empty ? 0 : product;
}

// numel * element_size in bytes, or nullopt on overflow of either step.
template <class Dims>
std::optional<int64_t> checked_nbytes(const Dims& dims, int64_t element_size) {
  const auto n = checked_numel(dims);
  if (!n) return std::nullopt;
  return checked_mul<int64_t>(*n, element_size);
}

}  // namespace vidfuse
