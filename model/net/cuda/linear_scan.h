// CUDA kernels for the two linear recurrences of the hybrid layer (model/net/i3_model.h), on
// raw device pointers so that this file and linear_scan.cu need neither LibTorch nor a GPU to
// compile: the LibTorch glue is in i3_model.cc, under I3LAB_WITH_CUDA_KERNELS.
//
// Both scans run in place over x [batch, T, c], float32, contiguous, on the given stream, and
// are sequential in t (one thread or warp carries the state through all T steps):
//   forward (reverse = false):  x_t ← x_t + K · x_{t-1}   for t = 1 .. T-1
//   reverse (reverse = true):   x_t ← x_t + K · x_{t+1}   for t = T-2 .. 0
// where K · v is w ⊙ v for the diagonal scan (w [c]) and the matrix-vector product with K [c,c]
// (row-major, K[r][j] multiplies v[j] into row r) for the matrix scan.
//
// Why sequential: the state is tiny (the matrix scan's c is d_state = 32, one warp), a step is
// 32 fused multiply-adds per lane, and every batch row is independent, so T steps cost a few
// microseconds of latency per hundred tokens while the Hillis–Steele form (log2 T matrix
// products over the whole tensor, the CPU path) moves the tensor log2 T times.
#pragma once

#include <cstdint>

namespace i3 {
namespace cuda {

// The largest c the matrix scan takes: one lane of one warp per state row.
constexpr int kMaxScanState = 32;

// Return nullptr on success, else the CUDA error's text (the launch failed: bad configuration,
// no device, a kernel image missing for this GPU). `stream` is a cudaStream_t.
const char* diagonal_scan(float* x, const float* w, int64_t batch, int64_t T, int64_t c, bool reverse, void* stream);
// REQUIRES: 1 <= c <= kMaxScanState.
const char* matrix_scan(float* x, const float* K, int64_t batch, int64_t T, int64_t c, bool reverse, void* stream);

}  // namespace cuda
}  // namespace i3
