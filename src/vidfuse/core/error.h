// One exception type for every user-facing failure: the message names the file and the problem.
#pragma once
#include <stdexcept>
#include <string>

namespace vidfuse {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// An argument a caller gave is wrong (a type, a shape, an empty list), as opposed to a file or a
// run that went wrong: the Python package raises it as a ValueError.
class InvalidArgument : public Error {
 public:
  using Error::Error;
};

// Throws Error("<path>: <what>") — the form every error about a file takes.
[[noreturn]] void fail_file(const std::string& path, const std::string& what);

}  // namespace vidfuse
