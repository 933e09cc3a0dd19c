#include "model/config/train_config.h"

#include <stdexcept>

#include "common/util/files.h"

namespace i3 {

using nlohmann::json;

json default_train_config() {
  return json{
      {"project", "i3"},
      {"name", ""},
      {"group", ""},
      {"tags", json::array()},
      {"notes", ""},
      {"model", {{"preset", "i3-80m"}}},
      {"data",
       {{"vocab", ""},
        {"sources", json::array()},
        {"val_fraction", 0.01},
        {"split_seed", 0},
        {"separator_token", -1},
        {"sampler", "random"},
        {"batch_size", 4},
        {"cache_dir", "data/cache"}}},
      {"optim",
       {{"lr", 3e-4},
        {"lr_floor", 0.1},
        {"warmup_iters", 100},
        {"lr_decay_iters", 0},
        {"weight_decay", 0.01},
        {"decay_all", true},
        {"beta1", 0.9},
        {"beta2", 0.999},
        {"eps", 1e-8},
        {"grad_clip", 1.0},
        {"grad_accum", 1}}},
      {"train", {{"max_iters", 5000}, {"seed", 0}, {"device", "auto"}, {"dtype", "float32"}, {"on_nonfinite", "stop"}}},
      {"logging",
       {{"log_interval", 10},
        {"eval_interval", 500},
        {"eval_batches", 20},
        {"watch_interval", 0},
        {"prompts", {"hello", "user: tell me", "once upon a time"}},
        {"sample_tokens", 50},
        {"temperature", 0.8},
        {"top_k", 40}}},
      {"checkpoint", {{"interval", 1000}, {"keep_last", 0}}},
  };
}

namespace {

std::string known_keys(const json& object) {
  std::string out;
  for (auto it = object.begin(); it != object.end(); ++it) out += (out.empty() ? "" : ", ") + it.key();
  return out;
}

std::string kind(const json& v) {
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_string()) return "a string";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

// Copies `user`'s keys onto `base` (the defaults), recursively. A key must exist in the
// defaults and its value must have the default's type (an integer is also a number).
void merge(json& base, const json& user, const std::string& path, const std::string& origin) {
  if (!user.is_object())
    throw std::invalid_argument(origin + ": " + (path.empty() ? "the config" : "\"" + path + "\"") + " must be a JSON object");
  for (auto it = user.begin(); it != user.end(); ++it) {
    const std::string key = path.empty() ? it.key() : path + "." + it.key();
    if (!base.contains(it.key()))
      throw std::invalid_argument(origin + ": unknown key \"" + key + "\" (known here: " + known_keys(base) + ")");
    json& slot = base[it.key()];
    const json& value = it.value();
    if (key == "model") {  // preset + model_config.h keys, checked by ModelConfig
      if (!value.is_object()) throw std::invalid_argument(origin + ": \"model\" must be a JSON object");
      slot.update(value);
    } else if (slot.is_object()) {
      merge(slot, value, key, origin);
    } else {
      const bool ok = slot.is_number_float() ? value.is_number() : kind(slot) == kind(value);
      if (!ok) throw std::invalid_argument(origin + ": \"" + key + "\" must be " + kind(slot) + ", got " + value.dump());
      slot = value;
    }
  }
}

// "optim.lr=1e-3" into `j`. The value is JSON when it parses as JSON, else a string.
void apply_override(json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument("--set expects section.key=value, got '" + assignment + "'");
  const std::string key = assignment.substr(0, eq), text = assignment.substr(eq + 1);
  json value = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (value.is_discarded()) value = text;
  json* node = &j;
  size_t start = 0;
  for (;;) {
    const auto dot = key.find('.', start);
    const std::string part = key.substr(start, dot - start);
    if (!node->is_object()) *node = json::object();
    if (dot == std::string::npos) {
      (*node)[part] = value;
      return;
    }
    node = &(*node)[part];
    start = dot + 1;
  }
}

DataSource parse_source(const json& s, const std::string& where) {
  if (!s.is_object()) throw std::invalid_argument(where + " must be an object such as {\"path\": \"data/*.txt\"}");
  DataSource out;
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    auto need = [&](bool ok, const char* what) {
      if (!ok) throw std::invalid_argument(where + "." + k + " must be " + what + ", got " + v.dump());
    };
    if (k == "path") need(v.is_string() && !v.get<std::string>().empty(), "a file or glob"), out.path = v;
    else if (k == "format") need(v == "text" || v == "jsonl", "\"text\" or \"jsonl\""), out.format = v;
    else if (k == "field") need(v.is_string(), "a string"), out.field = v;
    else if (k == "separator") need(v.is_string(), "a string"), out.separator = v;
    else if (k == "weight") need(v.is_number() && v.get<double>() >= 0, "a number ≥ 0"), out.weight = v;
    else throw std::invalid_argument(where + ": unknown key \"" + k + "\" (known: path, format, field, separator, weight)");
  }
  if (out.path.empty()) throw std::invalid_argument(where + " lacks \"path\"");
  return out;
}

}  // namespace

TrainConfig TrainConfig::parse(const json& j, const std::string& origin, const std::vector<std::string>& overrides) {
  json user = j;
  if (!user.is_object()) throw std::invalid_argument(origin + ": the config must be a JSON object");
  for (const auto& o : overrides) apply_override(user, o);
  json r = default_train_config();
  merge(r, user, "", origin);

  TrainConfig c;
  auto fail = [&](const std::string& key, const std::string& why) {
    throw std::invalid_argument(origin + ": \"" + key + "\" " + why);
  };

  c.project = r["project"];
  c.name = r["name"];
  c.group = r["group"];
  c.notes = r["notes"];
  for (const auto& t : r["tags"]) {
    if (!t.is_string()) fail("tags", "must be an array of strings");
    c.tags.push_back(t);
  }
  if (c.project.empty()) fail("project", "must not be empty");

  json model = r["model"];
  if (!model["preset"].is_string()) fail("model.preset", "must be a string");
  c.model_preset = model["preset"];
  model.erase("preset");
  try {
    c.model = ModelConfig::from_json(model, origin, preset(c.model_preset));
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).rfind(origin, 0) == 0) throw;
    fail("model.preset", std::string("is not a preset: ") + e.what());
  }
  r["model"] = json::object({{"preset", c.model_preset}});
  r["model"].update(c.model.to_json());

  const json& d = r["data"];
  c.vocab = d["vocab"];
  if (c.vocab.empty()) fail("data.vocab", "is required: a vocabulary file from `i3lab tokenizer build`");
  if (d["sources"].empty()) fail("data.sources", "is required: a list such as [{\"path\": \"data/train.txt\"}]");
  for (size_t i = 0; i < d["sources"].size(); ++i)
    c.sources.push_back(parse_source(d["sources"][i], origin + ": data.sources[" + std::to_string(i) + "]"));
  c.data.val_fraction = d["val_fraction"];
  if (!(c.data.val_fraction >= 0 && c.data.val_fraction < 1)) fail("data.val_fraction", "must be in [0, 1)");
  c.data.split_seed = d["split_seed"].get<uint64_t>();
  c.data.separator_token = d["separator_token"];
  c.sampler = d["sampler"];
  if (c.sampler != "random" && c.sampler != "epoch") fail("data.sampler", "must be \"random\" or \"epoch\"");
  c.batch_size = d["batch_size"];
  if (c.batch_size < 1) fail("data.batch_size", "must be at least 1");
  c.cache_dir = d["cache_dir"];

  const json& o = r["optim"];
  c.schedule.peak = o["lr"];
  c.schedule.floor = o["lr_floor"];
  c.schedule.warmup = o["warmup_iters"];
  c.adamw.weight_decay = o["weight_decay"];
  c.adamw.decay_all = o["decay_all"];
  c.adamw.beta1 = o["beta1"];
  c.adamw.beta2 = o["beta2"];
  c.adamw.eps = o["eps"];
  c.grad_clip = o["grad_clip"];
  c.grad_accum = o["grad_accum"];
  if (!(c.schedule.peak > 0)) fail("optim.lr", "must be positive");
  if (!(c.schedule.floor >= 0 && c.schedule.floor <= 1)) fail("optim.lr_floor", "must be in [0, 1]");
  if (c.schedule.warmup < 0) fail("optim.warmup_iters", "must be ≥ 0");
  if (!(c.adamw.weight_decay >= 0)) fail("optim.weight_decay", "must be ≥ 0");
  if (!(c.adamw.beta1 >= 0 && c.adamw.beta1 < 1)) fail("optim.beta1", "must be in [0, 1)");
  if (!(c.adamw.beta2 >= 0 && c.adamw.beta2 < 1)) fail("optim.beta2", "must be in [0, 1)");
  if (!(c.adamw.eps > 0)) fail("optim.eps", "must be positive");
  if (!(c.grad_clip >= 0)) fail("optim.grad_clip", "must be ≥ 0 (0: no clipping)");
  if (c.grad_accum < 1) fail("optim.grad_accum", "must be at least 1");

  const json& t = r["train"];
  c.max_iters = t["max_iters"];
  if (c.max_iters < 1) fail("train.max_iters", "must be at least 1");
  if (t["seed"].get<int64_t>() < 0) fail("train.seed", "must be ≥ 0");
  c.seed = t["seed"].get<uint64_t>();
  c.device = t["device"];
  c.dtype = t["dtype"];
  if (c.dtype != "float32" && c.dtype != "bfloat16") fail("train.dtype", "must be \"float32\" or \"bfloat16\"");
  c.on_nonfinite = t["on_nonfinite"];
  if (c.on_nonfinite != "stop" && c.on_nonfinite != "skip") fail("train.on_nonfinite", "must be \"stop\" or \"skip\"");
  const int64_t decay_iters = o["lr_decay_iters"];
  if (decay_iters < 0) fail("optim.lr_decay_iters", "must be ≥ 0 (0: train.max_iters)");
  c.schedule.max_iters = decay_iters > 0 ? decay_iters : c.max_iters;
  if (c.schedule.max_iters <= c.schedule.warmup && c.schedule.warmup > 0 && decay_iters > 0)
    fail("optim.lr_decay_iters", "must be larger than optim.warmup_iters");

  const json& l = r["logging"];
  c.log_interval = l["log_interval"];
  c.eval_interval = l["eval_interval"];
  c.eval_batches = l["eval_batches"];
  c.watch_interval = l["watch_interval"];
  for (const auto& p : l["prompts"]) {
    if (!p.is_string() || p.get<std::string>().empty()) fail("logging.prompts", "must be an array of non-empty strings");
    c.prompts.push_back(p);
  }
  c.sample_tokens = l["sample_tokens"];
  c.temperature = l["temperature"];
  c.top_k = l["top_k"];
  if (c.log_interval < 1) fail("logging.log_interval", "must be at least 1");
  if (c.eval_interval < 0) fail("logging.eval_interval", "must be ≥ 0 (0: off)");
  if (c.eval_batches < 1) fail("logging.eval_batches", "must be at least 1");
  if (c.watch_interval < 0) fail("logging.watch_interval", "must be ≥ 0 (0: off)");
  if (c.sample_tokens < 0) fail("logging.sample_tokens", "must be ≥ 0");
  if (!(c.temperature >= 0)) fail("logging.temperature", "must be ≥ 0");
  if (c.top_k < 0) fail("logging.top_k", "must be ≥ 0 (0: off)");

  c.checkpoint_interval = r["checkpoint"]["interval"];
  if (c.checkpoint_interval < 0) fail("checkpoint.interval", "must be ≥ 0 (0: only at the end)");
  c.checkpoint_keep_last = r["checkpoint"]["keep_last"];
  if (c.checkpoint_keep_last < 0) fail("checkpoint.keep_last", "must be ≥ 0 (0: keep every checkpoint)");

  c.resolved_ = std::move(r);
  return c;
}

TrainConfig TrainConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  json j;
  try {
    j = json::parse(util::read_file(path));
  } catch (const json::parse_error& e) {
    // e.what() reads "[json.exception.parse_error.101] parse error at line 2, column 1: ...".
    const std::string what = e.what();
    const size_t at = what.find("parse error");
    throw std::invalid_argument(path + ": not valid JSON (" + (at == std::string::npos ? what : what.substr(at)) + ")");
  }
  return parse(j, path, overrides);
}

void TrainConfig::set_vocab_size(int64_t n) {
  model.vocab_size = n;
  resolved_["model"]["vocab_size"] = n;
}

}  // namespace i3
