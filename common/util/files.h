// Reading a whole file.
#pragma once

#include <string>

namespace util {

// The file's bytes. Throws std::runtime_error "PATH: cannot open" or "PATH: read failed".
std::string read_file(const std::string& path);

}  // namespace util
