// Reading whole files that come from outside: only regular files, and only up to a size the
// caller names, checked before anything is read (a FIFO would block forever, /dev/zero never
// ends, and a 40 GB "config" would exhaust memory).
#pragma once

#include <cstdint>
#include <limits>
#include <string>

namespace util {

// Limits of the readers that take whole files (docs/limits.md).
constexpr uint64_t kMaxDocumentBytes = 256ull << 20;  // JSON documents: configs, vocabularies, states
constexpr uint64_t kNoSizeLimit = std::numeric_limits<uint64_t>::max();

// The file's bytes. Throws std::runtime_error naming the path: "cannot open" (with the
// system's reason), "is a directory" / "is not a regular file", "is N bytes; the limit here is
// M", or "read failed".
std::string read_file(const std::string& path, uint64_t max_bytes = kMaxDocumentBytes);

// The size of the regular file at `path` (opened without blocking, so a FIFO is refused, not
// waited on). Throws as read_file does.
uint64_t regular_file_size(const std::string& path);

// `name` in the folder of this process's executable (/proc/self/exe; without /proc, the
// folder of `argv0`, else the working directory): the programs i3lab is built as live side by
// side (i3lab, i3lab-model), and each starts the others from there.
std::string sibling_program(const std::string& name, const std::string& argv0 = "");

// A new, empty folder under the system's temporary folder (TMPDIR, else /tmp), named
// PREFIX-XXXXXX, removed with everything in it when the object goes. Throws
// std::runtime_error naming it when it cannot be made.
class TempDir {
 public:
  explicit TempDir(const std::string& prefix);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An open regular file, for readers that take a file piece by piece (a weights file is read
// header first, so nothing is allocated before the header is checked). The constructor
// refuses what is not a regular file, before a byte is read, as read_file does.
class RegularFile {
 public:
  explicit RegularFile(const std::string& path);
  ~RegularFile();
  RegularFile(const RegularFile&) = delete;
  RegularFile& operator=(const RegularFile&) = delete;

  uint64_t size() const { return size_; }  // at open
  const std::string& path() const { return path_; }
  // Reads exactly `n` bytes at `offset` into `out`. Throws std::runtime_error naming the path
  // when the file ends first (it shrank) or the read fails.
  void read_at(uint64_t offset, void* out, size_t n) const;
  // Throws std::runtime_error "PATH: WHAT".
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string path_;
  int fd_ = -1;
  uint64_t size_ = 0;
};

}  // namespace util
