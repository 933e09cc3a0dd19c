#include "common/util/files.h"

#include <fstream>
#include <sstream>
#include <stdexcept>

namespace util {

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error(path + ": cannot open");
  std::ostringstream out;
  out << in.rdbuf();
  if (in.bad()) throw std::runtime_error(path + ": read failed");
  return out.str();
}

}  // namespace util
