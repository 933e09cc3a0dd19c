#include "model/config/model_config.h"

#include <stdexcept>

namespace i3 {
namespace {

struct Field {
  const char* key;
  int64_t ModelConfig::*member;
};
constexpr Field kFields[] = {
    {"vocab_size", &ModelConfig::vocab_size}, {"d_model", &ModelConfig::d_model},
    {"n_heads", &ModelConfig::n_heads},       {"d_state", &ModelConfig::d_state},
    {"n_hybrid", &ModelConfig::n_hybrid},     {"n_attn", &ModelConfig::n_attn},
    {"ffn_mult", &ModelConfig::ffn_mult},     {"context", &ModelConfig::context},
};

struct Preset {
  const char* name;
  ModelConfig config;
};
// vocab_size, d_model, n_heads, d_state, n_hybrid, n_attn, ffn_mult, context
const Preset kPresets[] = {
    {"i3-80m", {0, 512, 16, 32, 10, 6, 4, 256}},  // the published i3-80M
    {"i3-demo", {0, 128, 4, 16, 4, 2, 4, 128}},   // learns visibly on 2 CPU cores in minutes
    {"i3-tiny", {0, 32, 4, 8, 2, 2, 4, 64}},      // unit tests
};

}  // namespace

void ModelConfig::validate() const {
  for (const auto& f : kFields)
    if (this->*f.member <= 0 && !(this->*f.member == 0 && (f.member == &ModelConfig::n_hybrid || f.member == &ModelConfig::n_attn)))
      throw std::invalid_argument(std::string("model config: ") + f.key + " must be positive, got " +
                                  std::to_string(this->*f.member) +
                                  (f.member == &ModelConfig::vocab_size ? " (give a vocabulary or vocab_size)" : ""));
  if (n_layers() == 0) throw std::invalid_argument("model config: n_hybrid + n_attn must be at least 1");
  if (d_model % n_heads != 0)
    throw std::invalid_argument("model config: d_model " + std::to_string(d_model) + " is not divisible by n_heads " +
                                std::to_string(n_heads));
}

int64_t ModelConfig::parameter_count() const {
  const int64_t d = d_model, n = d_state, f = ffn_mult * d_model;
  const int64_t block_common = 2 * 2 * d + (d * f + f) + (f * d + d);  // ln1, ln2, ffn
  const int64_t hybrid = d + n * n + n * d + d * n + d;                  // w_mix, A, B, C, D
  const int64_t attn = (3 * d * d + 3 * d) + (d * d + d);                // qkv, out_proj
  return vocab_size * d + context * d + n_layers() * block_common + n_hybrid * hybrid + n_attn * attn + 2 * d +
         (vocab_size * d + vocab_size);
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = nlohmann::json::object();
  for (const auto& f : kFields) j[f.key] = this->*f.member;
  return j;
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& origin, const ModelConfig& base) {
  if (!j.is_object()) throw std::invalid_argument(origin + ": model config must be a JSON object");
  ModelConfig c = base;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const Field* field = nullptr;
    for (const auto& f : kFields)
      if (it.key() == f.key) field = &f;
    if (!field) {
      std::string known;
      for (const auto& f : kFields) known += std::string(known.empty() ? "" : ", ") + f.key;
      throw std::invalid_argument(origin + ": unknown model key \"" + it.key() + "\" (known: " + known + ")");
    }
    if (!it.value().is_number_integer())
      throw std::invalid_argument(origin + ": model key \"" + it.key() + "\" must be an integer, got " + it.value().dump());
    c.*(field->member) = it.value().get<int64_t>();
  }
  return c;
}

void ModelConfig::set(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos) throw std::invalid_argument("--set expects key=value, got '" + assignment + "'");
  const std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  nlohmann::json v;
  try {
    v = nlohmann::json::parse(value);
  } catch (const nlohmann::json::exception&) {
    throw std::invalid_argument("--set " + key + ": '" + value + "' is not a number");
  }
  *this = from_json(nlohmann::json{{key, v}}, "--set", *this);
}

nlohmann::json ModelConfig::to_published_json() const {
  nlohmann::ordered_json j = {
      {"architectures", {"i3Model"}}, {"model_type", "i3"},    {"vocab_size", vocab_size},
      {"d_model", d_model},           {"n_layers", n_layers()}, {"n_heads", n_heads},
      {"max_seq_len", context},       {"conv_layers", n_hybrid}, {"attn_layers", n_attn},
      {"d_state", d_state},           {"tokenizer_type", "chunk"}, {"torch_dtype", "float32"}};
  if (ffn_mult != 4) j["ffn_mult"] = ffn_mult;  // i3lab extension; the published model is 4
  return j;
}

ModelConfig ModelConfig::from_published_json(const nlohmann::json& j, const std::string& origin) {
  if (!j.is_object()) throw std::invalid_argument(origin + ": config.json must be a JSON object");
  auto get = [&](const char* key, bool required, int64_t fallback) -> int64_t {
    if (!j.contains(key)) {
      if (required) throw std::invalid_argument(origin + ": config.json lacks \"" + key + "\"");
      return fallback;
    }
    if (!j[key].is_number_integer())
      throw std::invalid_argument(origin + ": config.json \"" + key + "\" must be an integer, got " + j[key].dump());
    return j[key].get<int64_t>();
  };
  if (j.contains("model_type") && j["model_type"] != "i3")
    throw std::invalid_argument(origin + ": model_type is " + j["model_type"].dump() + ", not \"i3\"");
  ModelConfig c;
  c.vocab_size = get("vocab_size", true, 0);
  c.d_model = get("d_model", true, 0);
  c.n_heads = get("n_heads", true, 0);
  c.context = get("max_seq_len", true, 0);
  c.d_state = get("d_state", false, 32);
  c.n_attn = get("attn_layers", false, 6);
  c.n_hybrid = get("conv_layers", false, get("n_layers", false, 16) - c.n_attn);
  c.ffn_mult = get("ffn_mult", false, 4);
  return c;
}

ModelConfig preset(const std::string& name) {
  for (const auto& p : kPresets)
    if (name == p.name) return p.config;
  std::string known;
  for (const auto& p : kPresets) known += std::string(known.empty() ? "" : ", ") + p.name;
  throw std::invalid_argument("unknown preset '" + name + "' (known: " + known + ")");
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.push_back(p.name);
  return names;
}

}  // namespace i3
