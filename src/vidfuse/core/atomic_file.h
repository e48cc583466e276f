// Atomic, durable output: write to a fresh temp file beside the target, fsync it, rename it over
// the target, fsync the folder. A killed run never leaves a half-written file under the final
// name, and a power loss after the call returns cannot lose or empty the file.
//
// Safe in a folder others can write to (a store shared on a cluster): temp files are created with
// O_CREAT|O_EXCL|O_NOFOLLOW under an unpredictable name, so a planted file or symbolic link is
// never opened, and rename() replaces a link at the target instead of writing through it.
//
// Temp names are "<path>.tmp.<pid>.<tag>": <tag> is 16 hex digits, the first 8 a hash of the host
// name, the last 8 random. Files of that form whose writer is gone are stale (find_stale_temps).
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace vidfuse {

// Calls `write` with a stream opened on a temp file next to `path`; on success fsyncs it, renames
// it to `path` and fsyncs the folder. On any failure (including an exception from `write`, a
// failed write, fsync or rename) the temp file is removed and Error (naming `path`) is thrown.
void write_file_atomically(const std::string& path,
                           const std::function<void(std::ostream&)>& write);

// Convenience for small payloads.
void write_text_atomically(const std::string& path, std::string_view text);

// Reserves a fresh temp name beside `path` (creates the file empty, exclusively, without following
// links) and returns it: for writers that must open the file themselves (an encoder). Publish it
// with publish_temp_file, or remove it.
std::string temp_path_for(const std::string& path);

// fsync `tmp`, rename it over `path`, fsync the folder. Throws Error naming `path`; the caller
// removes `tmp` on failure.
void publish_temp_file(const std::string& tmp, const std::string& path);

// Whether `file_name` (a name, not a path) has the temp form "<name>.tmp.<pid>.<suffix>"; the pid
// goes to *pid. Also recognises the older "<name>.tmp.<pid>.<n>" form.
bool parse_temp_name(const std::string& file_name, long* pid = nullptr);

// The temp files directly in `dir` whose writer is gone: regular files of the temp form written on
// this host by a process that no longer exists (kill(pid, 0) fails with ESRCH), and ones written
// on another host more than a day ago. Files of live processes, and anything else, are never
// listed. Paths, sorted. An unreadable folder gives an empty list.
std::vector<std::string> find_stale_temps(const std::string& dir);

// Removes find_stale_temps(dir); returns the paths removed.
std::vector<std::string> remove_stale_temps(const std::string& dir);

}  // namespace vidfuse
