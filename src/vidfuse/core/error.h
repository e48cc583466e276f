// One exception type for every user-facing failure: the message names the file and the problem.
#pragma once
#include <stdexcept>
#include <string>

namespace vidfuse {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Throws Error("<path>: <what>") — the form every error about a file takes.
[[noreturn]] void fail_file(const std::string& path, const std::string& what);

}  // namespace vidfuse
