// Text generation and scoring with an i3 model (spec: i3-model.md §6).
//
// Sampling: logits / temperature → top-k (keep logits ≥ the k-th largest) → softmax →
// top-p (keep the smallest set of most likely tokens whose mass reaches p) → draw.
// Greedy (or temperature 0) takes the arg-max. The draw uses its own seeded generator, so a
// seed gives the same text on every machine and thread count.
//
// Decoding is incremental while the sequence fits the context: the prompt runs once in
// parallel, then each new token costs one position (hybrid states carried, attention keys and
// values cached). Past the context the model sees a sliding window of the last `context`
// tokens with positions 0..context-1 and hybrid states restarted at the window's start —
// exactly what the published code computes — so every token past the context costs a full
// forward pass over the window.
#pragma once

#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/net/i3_model.h"
#include "model/text/tokenizer.h"

namespace i3 {

struct SamplingOptions {
  int64_t max_new_tokens = 50;
  double temperature = 1.0;        // 0 means greedy
  int64_t top_k = 0;               // 0: off
  double top_p = 1.0;              // 1: off
  bool greedy = false;
  uint64_t seed = 0;
  std::vector<std::string> stop;   // stop when the output contains one (compared lower-cased)
  bool incremental = true;         // false: re-run the whole window for every token (reference)
};

// Checks ranges; throws std::invalid_argument naming the option.
void validate(const SamplingOptions& options);

// Picks a token from one row of logits [V] (any float dtype, any device).
int64_t sample_token(const torch::Tensor& logits, const SamplingOptions& options, std::mt19937_64* rng);

struct Generation {
  std::vector<int64_t> ids;  // the new tokens (a stop string's tokens included)
  std::string text;          // their text, cut before the first stop string
  std::string finish_reason; // "length" or "stop"
};

// Continues `prompt` (at least one token). `on_token`, if set, sees each new id as it comes.
Generation generate(I3Model& model, const ChunkTokenizer& tokenizer, const std::vector<int64_t>& prompt,
                    const SamplingOptions& options, const std::function<void(int64_t)>& on_token = nullptr);

// Log-probability of each token after the first, given the tokens before it, from one forward
// pass. REQUIRES: 1 <= ids.size() <= context. Returns ids.size() - 1 values.
std::vector<double> token_logprobs(I3Model& model, const std::vector<int64_t>& ids);

}  // namespace i3
