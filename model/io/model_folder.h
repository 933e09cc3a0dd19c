// Model folders: what `i3lab model init` writes and `--model DIR` reads.
//
//   DIR/config.json        published keys (model_config.h), with the true d_state
//   DIR/model.safetensors  weights under the published names, float32
//   DIR/tokenizer.json     the chunk vocabulary
// Reading also takes a published folder as it is: pytorch_model.bin (torch.save'd state dict,
// flat or under model_state_dict: torch_checkpoint.h) when there is no model.safetensors, chunk_vocab_combined.json when there is no
// tokenizer.json. Tensor shapes win over config.json (the published one says d_state 64 for
// 32-wide tensors); each disagreement becomes a warning.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "model/net/i3_model.h"
#include "model/text/tokenizer.h"

namespace i3 {

struct ModelFolder {
  ModelConfig config;
  I3Model model{nullptr};
  std::optional<ChunkTokenizer> tokenizer;  // absent when the folder has no vocabulary
  std::vector<std::string> warnings;        // config.json disagreements, for the user
};

// Throws std::runtime_error naming the folder or file and what is wrong: a missing file,
// malformed JSON, a corrupt weight file, a missing, unexpected or mis-shaped tensor, a
// vocabulary larger than the model's embedding.
ModelFolder load_model_folder(const std::string& dir);

// Writes config.json, model.safetensors and (if given) tokenizer.json, creating DIR.
void save_model_folder(const std::string& dir, const I3Model& model, const ChunkTokenizer* tokenizer);

// The weight tensors of a folder by name, from model.safetensors or pytorch_model.bin.
std::vector<std::pair<std::string, torch::Tensor>> read_weights(const std::string& dir);

}  // namespace i3
