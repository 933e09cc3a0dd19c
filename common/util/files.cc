#include "common/util/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>

namespace util {
RegularFile::RegularFile(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
  struct stat st;
  const char* problem = ::fstat(fd_, &st) != 0 ? "cannot stat"
                        : S_ISDIR(st.st_mode)  ? "is a directory, not a file"
                        : !S_ISREG(st.st_mode) ? "is not a regular file (a device, FIFO or socket); give a file"
                                               : nullptr;
  if (problem) {
    ::close(fd_);  // no destructor runs for a constructor that throws
    fail(problem);
  }
  size_ = static_cast<uint64_t>(st.st_size);
}

RegularFile::~RegularFile() {
  if (fd_ >= 0) ::close(fd_);
}

void RegularFile::fail(const std::string& what) const {
  throw std::runtime_error(path_ + ": " + what);
}

void RegularFile::read_at(uint64_t offset, void* out, size_t n) const {
  char* dst = static_cast<char*>(out);
  size_t done = 0;
  while (done < n) {
    const ssize_t got = ::pread(fd_, dst + done, n - done, static_cast<off_t>(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) fail(std::string("read failed (") + std::strerror(errno) + ")");
    if (got == 0) fail("ends at byte " + std::to_string(offset + done) + ", before the " + std::to_string(n) +
                       " bytes expected at byte " + std::to_string(offset) + " (it changed while being read?)");
    done += static_cast<size_t>(got);
  }
}

uint64_t regular_file_size(const std::string& path) { return RegularFile(path).size(); }

std::string read_file(const std::string& path, uint64_t max_bytes) {
  RegularFile file(path);
  if (file.size() > max_bytes)
    file.fail("is " + std::to_string(file.size()) + " bytes; the limit for this kind of file is " +
              std::to_string(max_bytes));
  std::string out(file.size(), '\0');
  file.read_at(0, out.data(), out.size());
  return out;
}

std::string sibling_program(const std::string& name, const std::string& argv0) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  const std::string exe = n > 0 ? std::string(self, static_cast<size_t>(n)) : argv0;
  return exe.substr(0, exe.rfind('/') + 1) + name;
}

TempDir::TempDir(const std::string& prefix) {
  std::error_code ec;
  const std::filesystem::path base = std::filesystem::temp_directory_path(ec);
  std::string name = (ec ? std::filesystem::path("/tmp") : base).string() + "/" + prefix + "-XXXXXX";
  if (!::mkdtemp(name.data()))
    throw std::runtime_error(name + ": cannot create a temporary folder: " + std::strerror(errno) + " (set TMPDIR)");
  path_ = name;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace util
