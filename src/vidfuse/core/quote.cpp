#include "vidfuse/core/quote.h"

#include <cstdio>

namespace vidfuse {

namespace {

// The length of the well-formed UTF-8 sequence at s[i], or 0 if there is none (RFC 3629 table).
size_t utf8_sequence(std::string_view s, size_t i) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xbf;  // the allowed range of the second byte
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    if (c == 0xe0) lo = 0xa0;  // no overlongs
    if (c == 0xed) hi = 0x9f;  // no surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    if (c == 0xf0) lo = 0x90;
    if (c == 0xf4) hi = 0x8f;  // <= U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xbf) return 0;
  return n;
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string quoted_short(std::string_view value, size_t max_chars) {
  std::string out = "'";
  size_t chars = 0, i = 0;
  for (; i < value.size() && chars < max_chars; ++chars) {
    const size_t n = utf8_sequence(value, i);
    const auto c = static_cast<unsigned char>(value[i]);
    if (n == 0 || (n == 1 && (c < 0x20 || c == 0x7f))) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      i += 1;
    } else {
      out.append(value.substr(i, n));
      i += n;
    }
  }
  out += '\'';
  if (i < value.size()) {
    out.insert(out.size() - 1, "…");
    out += " (" + std::to_string(value.size()) + " bytes)";
  }
  return out;
}

}  // namespace vidfuse
