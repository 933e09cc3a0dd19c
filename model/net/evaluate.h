// Held-out loss: the mean next-token cross-entropy of a model over windows of a token stream.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "model/net/i3_model.h"

namespace i3 {

// Windows of `window` tokens (inputs and shifted targets: window = context + 1), cut from
// `tokens` without overlap, as a [N, window] int64 tensor. With max_windows > 0 and more
// windows available, takes max_windows of them evenly spaced over the stream, so a fixed
// validation set covers all of it. A stream shorter than one window but of at least 2 tokens
// gives one shorter window. REQUIRES: window >= 2.
torch::Tensor eval_windows(const std::vector<int64_t>& tokens, int64_t window, int64_t max_windows = 0);

struct EvalResult {
  double loss = 0;     // mean negative log-likelihood per predicted token (nats)
  int64_t tokens = 0;  // predicted tokens
};

// Runs `windows` through `model` in batches of `batch_size` rows, without gradients, on the
// model's device (under bf16 autocast when `bf16`). The loss averages over every predicted
// token of every window.
EvalResult evaluate(I3Model& model, const torch::Tensor& windows, int64_t batch_size, bool bf16 = false);

}  // namespace i3
