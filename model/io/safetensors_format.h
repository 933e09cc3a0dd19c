// The safetensors file format, without LibTorch.
//
//   [8 bytes: N, little-endian u64] [N bytes: JSON header] [data]
//   header = {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [BEGIN, END]}, ...,
//             "__metadata__": {"key": "string", ...}}        (optional metadata)
// Offsets are relative to the start of the data section. A valid file's tensors tile the data
// section exactly: sorted by BEGIN, each starts where the previous ended, the last ends at the
// end of the file, and END - BEGIN = product(shape) * sizeof(dtype). The header may be padded
// with spaces (writers pad to 8 bytes so the data is aligned).
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace safetensors {

// A file that breaks the format. The message names the tensor or field at fault.
struct FormatError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

const char* dtype_name(DType dtype);
size_t dtype_size(DType dtype);
// Throws FormatError for an unknown name.
DType dtype_from_name(const std::string& name);

struct TensorInfo {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets in the data section
  uint64_t end = 0;
};

struct Header {
  std::vector<TensorInfo> tensors;  // in data order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;          // file offset of the data section (8 + N)
};

// Limits of parse_header() (docs/limits.md).
// The header's JSON: i3-80M's is 20 KB (208 tensors); 16 MiB holds ~150,000 tensor entries
// and bounds the parsed document's memory to a few hundred MB.
constexpr uint64_t kMaxHeaderBytes = 16u << 20;
// A tensor name: published names are < 40 bytes; longer ones are garbage or an attack.
constexpr size_t kMaxTensorNameBytes = 1024;
// Dimensions of one tensor: weights have 1 or 2; 16 is far past any real tensor.
constexpr size_t kMaxTensorRank = 16;

// N, the header's length, from the file's first 8 bytes (`first8` may be shorter when the file
// is). Throws FormatError when the file is shorter than 8 bytes or N is over kMaxHeaderBytes or
// runs past the end of the file: a reader may then read 8 + N bytes and call parse_header.
uint64_t header_length(std::string_view first8, uint64_t file_size);

// Parses and validates a header. `prefix` holds at least the first 8 + N bytes of the file
// (more is fine); `file_size` is the size of the whole file. Throws FormatError (messages name
// the tensor, cut to 64 characters, but not the file) for a header length over
// kMaxHeaderBytes or past the end of the file, JSON that util::parse_json refuses (invalid or
// nested too deeply), a name twice or longer than kMaxTensorNameBytes, an unknown dtype, a
// shape with more than kMaxTensorRank dimensions or whose non-zero dimensions multiply past
// INT64_MAX (LibTorch's strides would overflow, even for a zero-element tensor), offsets that
// disagree with the shape or do not tile the data section exactly, and non-string metadata.
Header parse_header(const std::string& prefix, uint64_t file_size);

// Builds the 8-byte length and the space-padded JSON header for tensors laid out in the given
// order (offsets are assigned here, contiguously). REQUIRES: names are unique and not
// "__metadata__".
std::string make_header(std::vector<TensorInfo>* tensors, const std::map<std::string, std::string>& metadata);

}  // namespace safetensors
