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

}  // namespace util
