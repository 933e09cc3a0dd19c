// Process-wide LibTorch settings: threads and the device.
//
// On the CPU two thread pools matter: OpenMP threads of LibTorch's own kernels (element-wise
// ops, softmax, layer norm) and the BLAS's threads (the matrix products). Run both at full
// width and they fight over the cores; see docs/benchmarks.md for the measured choice.
#pragma once

#include <torch/torch.h>

#include <string>

namespace i3 {

// Sets LibTorch's intra-op threads and, when the BLAS is OpenBLAS, its threads.
// 0 means "all cores" for either.
void set_threads(int torch_threads, int blas_threads);

// The default split for this machine (docs/benchmarks.md), overridden by the environment
// variable I3LAB_THREADS="TORCH,BLAS" (e.g. "1,2").
void set_default_threads();

// One line describing the thread setup and BLAS, for logs and benchmarks.
std::string runtime_summary();

// "cpu", "cuda" or "cuda:N"; "auto" picks CUDA when available. Throws for an unavailable device.
torch::Device parse_device(const std::string& name);

// While alive (and `enabled`), CUDA matrix products and convolutions run in bfloat16 with
// float32 parameters and accumulation: torch.autocast(device_type="cuda", dtype=bfloat16).
class CudaBf16Autocast {
 public:
  explicit CudaBf16Autocast(bool enabled);
  ~CudaBf16Autocast();
  CudaBf16Autocast(const CudaBf16Autocast&) = delete;
  CudaBf16Autocast& operator=(const CudaBf16Autocast&) = delete;

 private:
  bool enabled_, was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kHalf;
};

}  // namespace i3
