#include "model/net/cuda/linear_scan.h"

#include <cuda_runtime.h>

namespace i3 {
namespace cuda {
namespace {

// Steps loaded ahead per round: the loads of a round do not depend on the state, so they are
// in flight together instead of one memory latency per step.
constexpr int kUnroll = 8;

// in[k] = the input of step i0 + k, at rows[t · stride] with t the step's time (counted from
// the end when `reverse`); 0 past the end or where `active` is false.
__device__ __forceinline__ void load_round(float (&in)[kUnroll], const float* rows, int64_t i0, int64_t T, int64_t stride,
                                           bool reverse, bool active) {
#pragma unroll
  for (int k = 0; k < kUnroll; ++k) {
    const int64_t i = i0 + k, t = reverse ? T - 1 - i : i;
    in[k] = active && i < T ? rows[t * stride] : 0.f;
  }
}

// One thread per (batch row, channel); threads of a warp hold neighbouring channels, so each
// step's loads and stores are coalesced. grid (batch, ceil(c / blockDim.x)): batch on x, whose
// limit is 2³¹−1 blocks (y's is 65,535).
__global__ void diagonal_scan_kernel(float* __restrict__ x, const float* __restrict__ w, int64_t T, int64_t c,
                                     bool reverse) {
  const int64_t channel = static_cast<int64_t>(blockIdx.y) * blockDim.x + threadIdx.x;
  if (channel >= c) return;
  float* row = x + static_cast<int64_t>(blockIdx.x) * T * c + channel;
  const float decay = w[channel];
  float state = 0.f;
  for (int64_t i0 = 0; i0 < T; i0 += kUnroll) {
    float in[kUnroll];
    load_round(in, row, i0, T, c, reverse, true);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int64_t i = i0 + k, t = reverse ? T - 1 - i : i;
      if (i < T) {
        state = fmaf(decay, state, in[k]);
        row[t * c] = state;
      }
    }
  }
}

// One warp per batch row; lane r carries state row r (lanes r >= c carry a zero) and holds row
// r of K in registers. A step broadcasts the previous state lane by lane (shuffles) into four
// independent sums, so the 32 multiply-adds are not one dependent chain. grid (batch), block 32.
__global__ void matrix_scan_kernel(float* __restrict__ x, const float* __restrict__ K, int64_t T, int c,
                                   bool reverse) {
  const int lane = threadIdx.x;
  const bool active = lane < c;
  float k_row[kMaxScanState];
#pragma unroll
  for (int j = 0; j < kMaxScanState; ++j) k_row[j] = active && j < c ? K[lane * c + j] : 0.f;
  float* rows = x + static_cast<int64_t>(blockIdx.x) * T * c + lane;
  float state = 0.f;
  for (int64_t i0 = 0; i0 < T; i0 += kUnroll) {
    float in[kUnroll];
    load_round(in, rows, i0, T, c, reverse, active);
#pragma unroll
    for (int k = 0; k < kUnroll; ++k) {
      const int64_t i = i0 + k, t = reverse ? T - 1 - i : i;
      if (i >= T) break;  // uniform across the warp: i does not depend on the lane
      float sum[4] = {in[k], 0.f, 0.f, 0.f};
#pragma unroll
      for (int j = 0; j < kMaxScanState; ++j) sum[j % 4] = fmaf(k_row[j], __shfl_sync(0xffffffffu, state, j), sum[j % 4]);
      state = (sum[0] + sum[1]) + (sum[2] + sum[3]);
      if (active) rows[t * c] = state;
    }
  }
}

const char* launched() {
  const cudaError_t err = cudaGetLastError();
  return err == cudaSuccess ? nullptr : cudaGetErrorString(err);
}

}  // namespace

const char* diagonal_scan(float* x, const float* w, int64_t batch, int64_t T, int64_t c, bool reverse, void* stream) {
  if (batch == 0 || T == 0 || c == 0) return nullptr;
  constexpr int kThreads = 128;
  const dim3 grid(static_cast<unsigned>(batch), static_cast<unsigned>((c + kThreads - 1) / kThreads));
  diagonal_scan_kernel<<<grid, kThreads, 0, static_cast<cudaStream_t>(stream)>>>(x, w, T, c, reverse);
  return launched();
}

const char* matrix_scan(float* x, const float* K, int64_t batch, int64_t T, int64_t c, bool reverse, void* stream) {
  if (c < 1 || c > kMaxScanState) return "matrix_scan: the state size must be 1..32";
  if (batch == 0 || T == 0) return nullptr;
  matrix_scan_kernel<<<static_cast<unsigned>(batch), 32, 0, static_cast<cudaStream_t>(stream)>>>(
      x, K, T, static_cast<int>(c), reverse);
  return launched();
}

}  // namespace cuda
}  // namespace i3
