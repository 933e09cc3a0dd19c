#include "model/config/model_config.h"

#include <optional>
#include <stdexcept>

#include "common/util/json.h"

namespace i3 {
namespace {

struct Field {
  const char* key;
  int64_t ModelConfig::*member;
  int64_t min, max;  // validate()'s range
};
constexpr Field kFields[] = {
    {"vocab_size", &ModelConfig::vocab_size, 1, kMaxVocabSize}, {"d_model", &ModelConfig::d_model, 1, kMaxDModel},
    {"n_heads", &ModelConfig::n_heads, 1, kMaxDModel},          {"d_state", &ModelConfig::d_state, 1, kMaxDState},
    {"n_hybrid", &ModelConfig::n_hybrid, 0, kMaxLayers},        {"n_attn", &ModelConfig::n_attn, 0, kMaxLayers},
    {"ffn_mult", &ModelConfig::ffn_mult, 1, kMaxFfnMult},       {"context", &ModelConfig::context, 1, kMaxContext},
};


// Arithmetic for the parameter count that throws instead of overflowing.
[[noreturn]] void count_overflows() {
  throw std::invalid_argument("model config: the parameter count does not fit in 64 bits; use smaller sizes");
}
int64_t add(int64_t a, int64_t b) {
  int64_t sum = 0;
  if (__builtin_add_overflow(a, b, &sum)) count_overflows();
  return sum;
}
int64_t mul(int64_t a, int64_t b) {
  int64_t product = 0;
  if (__builtin_mul_overflow(a, b, &product)) count_overflows();
  return product;
}

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
  for (const auto& f : kFields) {
    const int64_t v = this->*f.member;
    if (v < f.min)
      throw std::invalid_argument(std::string("model config: ") + f.key + " must be " +
                                  (f.min == 0 ? "at least 0" : "positive") + ", got " + std::to_string(v) +
                                  (f.member == &ModelConfig::vocab_size ? " (give a vocabulary or vocab_size)" : ""));
    if (v > f.max)
      throw std::invalid_argument(std::string("model config: ") + f.key + " is " + std::to_string(v) +
                                  ", over i3lab's limit of " + std::to_string(f.max) + "; use a smaller " + f.key);
  }
  if (n_layers() == 0) throw std::invalid_argument("model config: n_hybrid + n_attn must be at least 1");
  if (n_layers() > kMaxLayers)
    throw std::invalid_argument("model config: n_hybrid + n_attn is " + std::to_string(n_layers()) +
                                ", over i3lab's limit of " + std::to_string(kMaxLayers) + " layers");
  if (d_model % n_heads != 0)
    throw std::invalid_argument("model config: d_model " + std::to_string(d_model) + " is not divisible by n_heads " +
                                std::to_string(n_heads));
  if (const int64_t count = parameter_count(); count > kMaxParameters)
    throw std::invalid_argument("model config: " + std::to_string(count) + " parameters, over i3lab's limit of " +
                                std::to_string(kMaxParameters) + "; use smaller sizes");
}

int64_t ModelConfig::parameter_count() const {
  const int64_t d = d_model, n = d_state, f = mul(ffn_mult, d_model);
  const int64_t block_common = add(mul(4, d), add(add(mul(d, f), f), add(mul(f, d), d)));  // ln1, ln2, ffn
  const int64_t hybrid = add(add(d, mul(n, n)), add(add(mul(n, d), mul(d, n)), d));         // w_mix, A, B, C, D
  const int64_t attn = add(add(mul(3, mul(d, d)), mul(3, d)), add(mul(d, d), d));           // qkv, out_proj
  int64_t count = add(mul(vocab_size, d), mul(context, d));                                 // embed, pos_embed
  count = add(count, mul(add(n_hybrid, n_attn), block_common));
  count = add(count, add(mul(n_hybrid, hybrid), mul(n_attn, attn)));
  return add(count, add(mul(2, d), add(mul(vocab_size, d), vocab_size)));                  // ln_f, head
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
      throw std::invalid_argument(origin + ": unknown model key " + util::brief(it.key(), util::kQuoteChars) + " (known: " +
                                  known + ")");
    }
    const std::optional<int64_t> value = util::as_int64(it.value());
    if (!value)
      throw std::invalid_argument(origin + ": model key \"" + it.key() + "\" must be an integer, got " +
                                  util::brief(it.value(), util::kQuoteChars));
    c.*(field->member) = *value;
  }
  return c;
}

void ModelConfig::set(const std::string& assignment) {
  auto eq = assignment.find('=');
  if (eq == std::string::npos)
    throw std::invalid_argument("--set expects key=value, got " + util::brief(assignment, util::kQuoteChars));
  const std::string key = assignment.substr(0, eq), value = assignment.substr(eq + 1);
  const std::optional<nlohmann::json> v = util::try_parse_json(value);
  if (!v || !v->is_number())
    throw std::invalid_argument("--set " + util::brief(key, util::kQuoteChars) + ": " + util::brief(value, util::kQuoteChars) +
                                " is not a number");
  *this = from_json(nlohmann::json{{key, *v}}, "--set", *this);
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
    const std::optional<int64_t> value = util::as_int64(j[key]);
    if (!value)
      throw std::invalid_argument(origin + ": \"" + key + "\" must be an integer, got " + util::brief(j[key], util::kQuoteChars));
    return *value;
  };
  if (j.contains("model_type") && j["model_type"] != "i3")
    throw std::invalid_argument(origin + ": model_type is " + util::brief(j["model_type"], util::kQuoteChars) +
                                ", not \"i3\"; this is not an i3 model folder");
  ModelConfig c;
  c.vocab_size = get("vocab_size", true, 0);
  c.d_model = get("d_model", true, 0);
  c.n_heads = get("n_heads", true, 0);
  c.context = get("max_seq_len", true, 0);
  c.d_state = get("d_state", false, 32);
  c.n_attn = get("attn_layers", false, 6);
  int64_t n_hybrid_default = 0;
  if (__builtin_sub_overflow(get("n_layers", false, 16), c.n_attn, &n_hybrid_default))
    throw std::invalid_argument(origin + ": n_layers - attn_layers is out of range");
  c.n_hybrid = get("conv_layers", false, n_hybrid_default);
  c.ffn_mult = get("ffn_mult", false, 4);
  return c;
}

ModelConfig preset(const std::string& name) {
  for (const auto& p : kPresets)
    if (name == p.name) return p.config;
  std::string known;
  for (const auto& p : kPresets) known += std::string(known.empty() ? "" : ", ") + p.name;
  throw std::invalid_argument("unknown preset " + util::brief(name, util::kQuoteChars) + " (known: " + known + ")");
}

std::vector<std::string> preset_names() {
  std::vector<std::string> names;
  for (const auto& p : kPresets) names.push_back(p.name);
  return names;
}

}  // namespace i3
