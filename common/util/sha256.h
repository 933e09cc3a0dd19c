// SHA-256 (FIPS 180-4), for content-addressed artifact files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace util {

class Sha256 {
 public:
  Sha256();
  void update(const void* data, size_t size);
  void update(std::string_view s) { update(s.data(), s.size()); }
  // The digest as 64 lowercase hex characters. Ends the computation.
  std::string hex();

 private:
  void block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t used_ = 0;
  uint64_t total_ = 0;
};

std::string sha256_hex(std::string_view data);
// Whether `s` is a SHA-256 as this project names content: 64 lowercase hex digits.
bool is_sha256_hex(std::string_view s);
// Hashes a file by streaming it. Throws std::runtime_error naming the file.
std::string sha256_file(const std::string& path, uint64_t* size = nullptr);

}  // namespace util
