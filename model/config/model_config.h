// The shape of an i3 model (spec: i3-model.md §1).
//
// Two JSON forms:
//  - i3lab's own (`to_json`/`from_json`), used in training configs and presets:
//      {"vocab_size": V, "d_model": 512, "n_heads": 16, "d_state": 32, "n_hybrid": 10,
//       "n_attn": 6, "ffn_mult": 4, "context": 256}
//  - the published folder's config.json (`to_published_json`/`from_published_json`) with the
//    keys architectures, model_type, vocab_size, d_model, n_layers, n_heads, max_seq_len,
//    conv_layers (= n_hybrid), attn_layers, d_state, tokenizer_type, torch_dtype.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace i3 {

// The largest shapes validate() accepts (docs/limits.md). Far above anything i3lab trains (the
// published i3-80M: V 41,320, d 512, n 32, 16 layers, FFN 4·d, context 256), yet small enough
// that every count derived from them fits in int64 and a hostile config or checkpoint cannot
// make i3lab allocate terabytes.
constexpr int64_t kMaxVocabSize = int64_t{1} << 24;  // token ids are int32
constexpr int64_t kMaxDModel = int64_t{1} << 16;
constexpr int64_t kMaxDState = int64_t{1} << 12;     // the hybrid state matrix A is n×n
constexpr int64_t kMaxLayers = 1024;                 // n_hybrid + n_attn
constexpr int64_t kMaxFfnMult = 64;
constexpr int64_t kMaxContext = int64_t{1} << 20;
constexpr int64_t kMaxParameters = int64_t{1} << 36;  // 256 GiB of fp32 weights

struct ModelConfig {
  int64_t vocab_size = 0;  // V: embedding and head rows; from the vocabulary or checkpoint
  int64_t d_model = 512;
  int64_t n_heads = 16;    // attention heads; head_dim = d_model / n_heads
  int64_t d_state = 32;    // n: size of the hybrid layer's linear state
  int64_t n_hybrid = 10;   // hybrid (RWKV mixing + linear state) blocks, first
  int64_t n_attn = 6;      // causal attention blocks, after the hybrid ones
  int64_t ffn_mult = 4;    // FFN hidden size = ffn_mult * d_model
  int64_t context = 256;   // learned absolute positions: the longest input

  int64_t n_layers() const { return n_hybrid + n_attn; }

  // Throws std::invalid_argument naming the first field out of range: a field that is not
  // positive (n_hybrid or n_attn may be 0, not both), over its kMax… bound above, d_model not
  // divisible by n_heads, or more than kMaxParameters parameters.
  void validate() const;
  // Exact number of parameters: 1025·V + 40,412,160 for the i3-80m shape. Never overflows: a
  // count past int64 (possible only for a config validate() refuses) throws
  // std::invalid_argument.
  int64_t parameter_count() const;

  nlohmann::json to_json() const;
  // Starts from `base` and applies the keys present; an unknown key or a value that is not an
  // integer in int64's range throws std::invalid_argument naming `origin` and the key. Does not
  // validate(). Values quoted in errors are cut to 64 characters.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& origin, const ModelConfig& base);
  // Applies "key=value" (one of the to_json keys). Throws std::invalid_argument for a missing
  // '=', a value that is not an integer, or an unknown key.
  void set(const std::string& assignment);

  nlohmann::json to_published_json() const;
  // Reads a published config.json. Unknown extra keys are ignored (the format is not ours);
  // missing required keys, a known key that is not an integer in int64's range, and a
  // model_type other than "i3" throw std::invalid_argument naming `origin`. Does not validate().
  static ModelConfig from_published_json(const nlohmann::json& j, const std::string& origin);
};

// Named shapes. i3-80m is the published model; the others are ours (same architecture).
// A preset's vocab_size is 0: it comes from the vocabulary. Throws for an unknown name.
ModelConfig preset(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace i3
