// Text generation and scoring with an i3 model (spec: i3-model.md §6).
//
// Sampling: logits / temperature → top-k (keep logits ≥ the k-th largest) → softmax →
// top-p (keep the smallest set of most likely tokens whose mass reaches p) → draw.
// Greedy (or temperature 0) takes the arg-max. The draw uses its own seeded generator, so a
// seed gives the same text on every machine and thread count.
//
// Decoding computes, for each new token, the logits of the last position only
// (I3ModelImpl::last_logits). While the sequence (prompt + new tokens) fits the context it is
// incremental and exact: the prompt runs once in parallel, then each new token costs one
// position (hybrid states carried, attention keys and values cached).
//
// Past the context the model reads a window: with n tokens so far, a suffix ids[b..n-1] at
// positions 0..n-1-b, hybrid states starting from zero at ids[b] and attention over the window
// only. No state or cache survives a move of b. The window mode chooses b:
//   slide   b = n − context: the last `context` tokens, exactly what the published code
//           computes. b moves with every token, so each token past the context costs a forward
//           pass over `context` tokens.
//   half    (the default) b stays while the window fits; when the newest token would make it
//           longer than `context`, b jumps to n − h, h = ⌈context/2⌉ (128 for context 256):
//           the last h tokens run in parallel, then decoding is incremental again up to a full
//           window. The model sees between h and `context` tokens; each cycle of
//           context − h + 1 new tokens costs one forward pass over h tokens plus context − h
//           one-token steps.
// A prompt longer than the context starts from its last `context` tokens in both modes, and
// both modes give the same tokens as long as the sequence fits the context. With
// `incremental = false` each token recomputes the same window from scratch (the reference).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "model/net/i3_model.h"
#include "model/text/tokenizer.h"

namespace i3 {

// Which window the model reads once the sequence is longer than the context (see above).
enum class Window { kHalf, kSlide };

struct SamplingOptions {
  int64_t max_new_tokens = 50;
  double temperature = 1.0;        // 0 means greedy
  int64_t top_k = 0;               // 0: off
  double top_p = 1.0;              // 1: off
  bool greedy = false;
  uint64_t seed = 0;
  std::vector<std::string> stop;   // stop when the output contains one (compared lower-cased)
  Window window = Window::kHalf;   // what the model sees past the context (see above)
  bool incremental = true;         // false: recompute the window from scratch for every token
                                   // (the reference the incremental path is checked against)
  // Polled before each token: once it is true, generation ends ("interrupted"). Long samples
  // inside a training step must not outlast a SIGTERM.
  const std::atomic<bool>* interrupt = nullptr;
};

// Checks ranges; throws std::invalid_argument naming the option.
void validate(const SamplingOptions& options);

// Picks a token from one row of logits [V] (any float dtype, any device).
int64_t sample_token(const torch::Tensor& logits, const SamplingOptions& options, std::mt19937_64* rng);

struct Generation {
  std::vector<int64_t> ids;  // the new tokens (a stop string's tokens included)
  std::string text;          // their text, cut before the first stop string
  std::string finish_reason; // "length", "stop" (a stop string) or "interrupted"
};

// Continues `prompt` (at least one token). `on_token`, if set, sees each new id as it comes.
Generation generate(I3Model& model, const ChunkTokenizer& tokenizer, const std::vector<int64_t>& prompt,
                    const SamplingOptions& options, const std::function<void(int64_t)>& on_token = nullptr);

// Log-probability of each token after the first, given the tokens before it, from one forward
// pass. REQUIRES: 1 <= ids.size() <= context. Returns ids.size() - 1 values.
std::vector<double> token_logprobs(I3Model& model, const std::vector<int64_t>& ids);

}  // namespace i3
