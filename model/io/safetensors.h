// Reading and writing LibTorch tensors as safetensors files (format: safetensors_format.h).
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "model/io/safetensors_format.h"

namespace safetensors {

struct TensorFile {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // in file order
  std::map<std::string, std::string> metadata;
};

// Reads a whole file: the header first, checked by parse_header() before any tensor is
// allocated, then each tensor's bytes into its own storage (memory: the file's data size).
// Throws FormatError prefixed with `path` for anything malformed (truncated data, overlapping
// or gapped offsets, wrong sizes, unknown dtypes, bad JSON, a limit of safetensors_format.h
// exceeded) and for a path that is not a regular file (a FIFO, a device such as /dev/zero).
TensorFile load(const std::string& path);

// Writes tensors (made contiguous, on the CPU) in the given order. Writes to a temporary file
// and renames it over `path`, so a crash never leaves a half-written file under that name.
void save(const std::string& path, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
          const std::map<std::string, std::string>& metadata = {});

}  // namespace safetensors
