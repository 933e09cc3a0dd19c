#include "model/io/model_folder.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>

#include "common/util/json.h"
#include "model/io/safetensors.h"
#include "model/io/torch_checkpoint.h"

namespace fs = std::filesystem;

namespace i3 {
namespace {


std::string quote(const std::string& name) { return util::brief(name, util::kQuoteChars); }

// The layer a tensor name belongs to: "layers.N.hybrid.…" → (N, false), "layers.N.attn.…" →
// (N, true); nothing for any other name. Parsed by hand, in one pass: a name is untrusted
// input, and std::regex recurses per character (a 50,000-character name overflowed the stack).
std::optional<std::pair<int64_t, bool>> layer_of(const std::string& name, const std::string& dir) {
  static const std::string kPrefix = "layers.";
  if (name.compare(0, kPrefix.size(), kPrefix) != 0) return std::nullopt;
  const size_t digits = kPrefix.size(), end = name.find_first_not_of("0123456789", digits);
  if (end == std::string::npos || end == digits) return std::nullopt;
  const bool attention = name.compare(end, 6, ".attn.") == 0;
  if (!attention && name.compare(end, 8, ".hybrid.") != 0) return std::nullopt;
  // More digits than kMaxLayers has cannot be a layer of a valid model (and would overflow).
  if (end - digits > std::to_string(kMaxLayers).size())
    throw std::runtime_error(dir + ": tensor " + quote(name) + " names a layer past i3lab's limit of " +
                             std::to_string(kMaxLayers) + " layers");
  return std::make_pair(std::stoll(name.substr(digits, end - digits)), attention);
}

}  // namespace

std::vector<std::pair<std::string, torch::Tensor>> read_weights(const std::string& dir) {
  const fs::path st = fs::path(dir) / "model.safetensors", bin = fs::path(dir) / "pytorch_model.bin";
  if (fs::exists(st)) return safetensors::load(st.string()).tensors;
  if (fs::exists(bin)) return load_torch_state_dict(bin.string());
  throw std::runtime_error(dir + ": no model.safetensors or pytorch_model.bin");
}

ModelFolder load_model_folder(const std::string& dir) {
  if (!fs::is_directory(dir)) throw std::runtime_error(dir + ": not a model folder (no such directory)");
  const fs::path config_path = fs::path(dir) / "config.json";
  ModelFolder folder;
  try {
    folder.config = ModelConfig::from_published_json(util::read_json_file(config_path.string()), config_path.string());
  } catch (const std::invalid_argument& e) {  // util::JsonError too
    throw std::runtime_error(e.what());
  }

  // The readers allocate only what the file describes (its bytes); the model is built only
  // once every tensor's shape is known to be the one the model needs.
  std::map<std::string, torch::Tensor> weights;
  for (auto& [name, tensor] : read_weights(dir)) weights[name] = tensor;
  auto shape_of = [&](const std::string& name, int dim) -> int64_t {
    auto it = weights.find(name);
    if (it == weights.end()) throw std::runtime_error(dir + ": weights lack tensor " + name);
    if (it->second.dim() <= dim) throw std::runtime_error(dir + ": tensor " + name + " has too few dimensions");
    return it->second.size(dim);
  };

  // Trust the tensors' shapes over config.json.
  ModelConfig shapes = folder.config;
  shapes.vocab_size = shape_of("embed.weight", 0);
  shapes.d_model = shape_of("embed.weight", 1);
  shapes.context = shape_of("pos_embed.weight", 0);
  std::map<int64_t, bool> layer_is_attention;
  for (const auto& [name, t] : weights)
    if (const auto layer = layer_of(name, dir)) layer_is_attention[layer->first] = layer->second;
  shapes.n_hybrid = shapes.n_attn = 0;
  for (const auto& [index, is_attention] : layer_is_attention) {
    if (index != shapes.n_layers() || (!is_attention && shapes.n_attn > 0))
      throw std::runtime_error(dir + ": layers must be numbered from 0, hybrid blocks first (layer " +
                               std::to_string(index) + " is out of place)");
    (is_attention ? shapes.n_attn : shapes.n_hybrid)++;
  }
  if (shapes.n_hybrid > 0) shapes.d_state = shape_of("layers.0.hybrid.A", 0);
  if (shapes.n_layers() > 0 && shapes.d_model > 0) shapes.ffn_mult = shape_of("layers.0.ffn.0.weight", 0) / shapes.d_model;
  const auto said = folder.config.to_json(), found = shapes.to_json();
  for (auto it = said.begin(); it != said.end(); ++it)
    if (found[it.key()] != it.value())
      folder.warnings.push_back("config.json gives " + it.key() + " = " + it.value().dump() + " but the tensors have " +
                                found[it.key()].dump() + "; using " + found[it.key()].dump());
  folder.config = shapes;
  try {
    folder.config.validate();
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(dir + ": " + e.what());
  }
  // Every tensor against the shape the model needs, before the model exists: a zero-element
  // tensor of shape [2^25, 0] is 0 bytes in the file, and must not make a [2^25, d] embedding.
  const auto needed = parameter_shapes(folder.config);
  for (const auto& [name, shape] : needed) {
    auto it = weights.find(name);
    if (it == weights.end()) throw std::runtime_error(dir + ": weights lack tensor " + name);
    if (it->second.sizes() != c10::IntArrayRef(shape))
      throw std::runtime_error(dir + ": tensor " + name + " has shape " + c10::str(it->second.sizes()) +
                               ", the model needs " + c10::str(c10::IntArrayRef(shape)));
  }
  if (weights.size() != needed.size()) {
    for (const auto& [name, shape] : needed) weights.erase(name);
    throw std::runtime_error(dir + ": unexpected tensor " + quote(weights.begin()->first) + " in the weights");
  }

  folder.model = I3Model(folder.config);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, param] : folder.model->state_dict()) param.copy_(weights.at(name).to(param.dtype()));
  }

  for (const char* name : {"tokenizer.json", "chunk_vocab_combined.json"}) {
    const fs::path path = fs::path(dir) / name;
    if (!fs::exists(path)) continue;
    folder.tokenizer = ChunkTokenizer::load(path.string());
    if (folder.tokenizer->vocab_size() > folder.config.vocab_size)
      throw std::runtime_error(path.string() + ": " + std::to_string(folder.tokenizer->vocab_size()) +
                               " ids, more than the model's " + std::to_string(folder.config.vocab_size) + " embedding rows");
    break;
  }
  return folder;
}

void save_model_folder(const std::string& dir, const I3Model& model, const ChunkTokenizer* tokenizer) {
  fs::create_directories(dir);
  {
    const fs::path path = fs::path(dir) / "config.json";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << model->config().to_published_json().dump(2) << "\n";
    if (!out.flush()) throw std::runtime_error(path.string() + ": cannot write");
  }
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  for (auto& [name, t] : model->state_dict()) tensors.emplace_back(name, t.detach().to(torch::kCPU, torch::kFloat32));
  safetensors::save((fs::path(dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  if (tokenizer) tokenizer->save((fs::path(dir) / "tokenizer.json").string());
}

}  // namespace i3
