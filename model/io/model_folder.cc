#include "model/io/model_folder.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "common/util/files.h"
#include "model/io/safetensors.h"
#include "model/io/torch_checkpoint.h"

namespace fs = std::filesystem;

namespace i3 {
namespace {

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
  nlohmann::json config_json;
  try {
    config_json = nlohmann::json::parse(util::read_file(config_path.string()));
  } catch (const nlohmann::json::exception& e) {
    throw std::runtime_error(config_path.string() + ": not valid JSON (" + e.what() + ")");
  }
  ModelFolder folder;
  try {
    folder.config = ModelConfig::from_published_json(config_json, config_path.string());
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(e.what());
  }

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
  static const std::regex layer_re(R"(layers\.(\d+)\.(hybrid|attn)\..*)");
  std::map<int64_t, bool> layer_is_attention;
  for (const auto& [name, t] : weights) {
    std::smatch m;
    if (std::regex_match(name, m, layer_re)) layer_is_attention[std::stoll(m[1])] = m[2] == "attn";
  }
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

  folder.model = I3Model(folder.config);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, param] : folder.model->state_dict()) {
      auto it = weights.find(name);
      if (it == weights.end()) throw std::runtime_error(dir + ": weights lack tensor " + name);
      if (it->second.sizes() != param.sizes()) {
        std::ostringstream msg;
        msg << dir << ": tensor " << name << " has shape " << it->second.sizes() << ", the model needs " << param.sizes();
        throw std::runtime_error(msg.str());
      }
      param.copy_(it->second.to(param.dtype()));
      weights.erase(it);
    }
  }
  if (!weights.empty()) throw std::runtime_error(dir + ": unexpected tensor " + weights.begin()->first + " in the weights");

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
