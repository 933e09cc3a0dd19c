#include "common/util/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace util {
namespace {

// An open regular file; refuses anything else before a byte is read.
class RegularFile {
 public:
  explicit RegularFile(const std::string& path) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error(path + ": cannot open (" + std::strerror(errno) + ")");
    struct stat st;
    if (::fstat(fd_, &st) != 0) fail("cannot stat");
    if (S_ISDIR(st.st_mode)) fail("is a directory, not a file");
    if (!S_ISREG(st.st_mode)) fail("is not a regular file (a device, FIFO or socket); give a file");
    size_ = static_cast<uint64_t>(st.st_size);
  }
  ~RegularFile() { ::close(fd_); }
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  [[noreturn]] void fail(const std::string& what) const { throw std::runtime_error(path_ + ": " + what); }
  int fd() const { return fd_; }
  uint64_t size() const { return size_; }

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace

uint64_t regular_file_size(const std::string& path) { return RegularFile(path).size(); }

std::string read_file(const std::string& path, uint64_t max_bytes) {
  RegularFile file(path);
  if (file.size() > max_bytes)
    file.fail("is " + std::to_string(file.size()) + " bytes; the limit for this kind of file is " +
              std::to_string(max_bytes));
  std::string out(file.size(), '\0');
  size_t done = 0;
  while (done < out.size()) {
    const ssize_t n = ::read(file.fd(), out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) file.fail(std::string("read failed (") + std::strerror(errno) + ")");
    if (n == 0) break;  // shrank while we read
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

}  // namespace util
