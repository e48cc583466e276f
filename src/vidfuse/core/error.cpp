#include "vidfuse/core/error.h"

namespace vidfuse {

void fail_file(const std::string& path, const std::string& what) { throw Error(path + ": " + what); }

}  // namespace vidfuse
