// How an error message quotes a value that came from a file: shortened, with unprintable and
// invalid-UTF-8 bytes escaped, so that a hostile 20 MB field (or a key of raw bytes) shows as
// 'abc…' (20971520 bytes) instead of being echoed whole.
#pragma once
#include <string>
#include <string_view>

namespace vidfuse {

// 'value' in single quotes; longer than `max_chars` characters: the first ones, "…' (N bytes)".
// Control characters and bytes that are not valid UTF-8 are written as \xNN.
std::string quoted_short(std::string_view value, size_t max_chars = 60);

// True if `s` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
bool is_valid_utf8(std::string_view s);

}  // namespace vidfuse
