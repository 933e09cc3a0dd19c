// The training loss: mean next-token cross-entropy, fused on the CPU.
//
// torch's cross_entropy keeps the [N, V] log-softmax for backward, then builds a zero-filled
// NLL gradient and a log-softmax gradient of the same size, computing exp() twice per element.
// This computes the loss and, in the same sweep, the gradient (softmax − one-hot) / N, a few
// rows at a time while they are in cache, and hands that gradient to backward(). Measured
// (docs/benchmarks.md): a loss-dominated step runs 2× faster, an i3-80m step as fast within
// noise but with ~280 MB less peak memory.
#pragma once

#include <torch/torch.h>

namespace i3 {

// Mean over rows of −log softmax(logits[i])[targets[i]]. logits [N, V] float32 on the CPU that
// need a gradient take the fused path; anything else (CUDA, bf16, evaluation) goes to torch's.
// REQUIRES: 0 <= targets[i] < V. Backward may run once per forward (the gradient buffer is
// reused in place).
torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets);

}  // namespace i3
