// Atomic output: write to a temp file beside the target, fsync, then rename over it, so a killed
// run never leaves a half-written file under the final name.
#pragma once
#include <functional>
#include <string>
#include <string_view>

namespace vidfuse {

// Calls `write` with a stream opened on a temp file next to `path`; on success renames it to
// `path`. On any failure (including an exception from `write`) the temp file is removed and Error
// is thrown.
void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write);

// A fresh temp name beside `path` ("<path>.tmp.<pid>.<n>"), unique within this process and across
// processes: what write_file_atomically writes to before renaming, for writers that need the name
// itself (an encoder opening its own output).
std::string temp_path_for(const std::string& path);

// Convenience for small payloads.
void write_text_atomically(const std::string& path, std::string_view text);

}  // namespace vidfuse
