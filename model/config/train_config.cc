#include "model/config/train_config.h"

#include <filesystem>
#include <functional>
#include <stdexcept>

#include "common/util/json.h"

namespace i3 {
namespace {

using nlohmann::json;

// Throws "ORIGIN: "KEY" WHY" for the key being read.
using Reject = std::function<void(const std::string& why)>;

// One key of a training config: the single source of its path, default, check and meaning.
// Before `read` runs, the value is known to have the default's JSON type (an integer is also a
// number); `read` checks its range and stores it into the struct.
struct Key {
  const char* path;
  json default_value;
  const char* meaning;
  void (*read)(TrainConfig& c, const json& v, const Reject& reject);
};

std::vector<std::string> non_empty_strings(const json& v, const Reject& reject) {
  std::vector<std::string> out;
  for (const auto& s : v) {
    if (!s.is_string() || s.get<std::string>().empty()) reject("must be an array of non-empty strings");
    out.push_back(s);
  }
  return out;
}

DataSource parse_source(const json& s, const std::string& where) {
  if (!s.is_object()) throw std::invalid_argument(where + " must be an object such as {\"path\": \"data/*.txt\"}");
  DataSource out;
  for (auto it = s.begin(); it != s.end(); ++it) {
    const std::string& k = it.key();
    const json& v = it.value();
    auto need = [&](bool ok, const char* what) {
      if (!ok) throw std::invalid_argument(where + "." + util::brief(k) + " must be " + what + ", got " + util::brief(v));
    };
    if (k == "path") need(v.is_string() && !v.get<std::string>().empty(), "a file or glob"), out.path = v;
    else if (k == "format") need(v == "text" || v == "jsonl", "\"text\" or \"jsonl\""), out.format = v;
    else if (k == "field") need(v.is_string(), "a string"), out.field = v;
    else if (k == "separator") need(v.is_string(), "a string"), out.separator = v;
    else if (k == "weight") need(v.is_number() && v.get<double>() >= 0, "a number ≥ 0"), out.weight = v;
    else throw std::invalid_argument(where + ": unknown key " + util::brief(k) + " (known: path, format, field, separator, weight)");
  }
  if (out.path.empty()) throw std::invalid_argument(where + " lacks \"path\"");
  return out;
}

// The table, in the order of the docs. Keys "model" and "data.sources" hold structures that
// their read functions check themselves.
const std::vector<Key>& keys() {
  static const std::vector<Key> table = {
      // The run in the tracker.
      {"project", "i3", "the run's project",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.project = v).empty()) no("must not be empty"); }},
      {"name", "", "the run's name (empty: run-<uid8>)", [](TrainConfig& c, const json& v, const Reject&) { c.name = v; }},
      {"group", "", "a group of runs (a sweep, say)", [](TrainConfig& c, const json& v, const Reject&) { c.group = v; }},
      {"tags", json::array(), "tags (strings)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         for (const auto& t : v) {
           if (!t.is_string()) no("must be an array of strings");
           c.tags.push_back(t);
         }
       }},
      {"notes", "", "free text", [](TrainConfig& c, const json& v, const Reject&) { c.notes = v; }},
      // The model: read by TrainConfig::parse (a preset, then model_config.h keys over it).
      {"model", {{"preset", "i3-80m"}},
       "`preset` (i3-80m, i3-demo, i3-tiny) plus any shape key: d_model, n_heads, d_state, n_hybrid, n_attn, ffn_mult, "
       "context, vocab_size (0: the vocabulary's)",
       nullptr},
      // Data.
      {"data.vocab", "", "REQUIRED: a chunk vocabulary from `i3lab tokenizer build`",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.vocab = v).empty()) no("is required: a vocabulary file from `i3lab tokenizer build`");
       }},
      {"data.sources", json::array(),
       "REQUIRED: a list of {\"path\": a file, glob or folder, \"format\": \"text\" or \"jsonl\", \"field\": \"text\", "
       "\"separator\": \"\", \"weight\": 0} (docs/training.md)",
       nullptr},
      {"data.val_fraction", 0.01, "fraction of documents held out for validation",
       [](TrainConfig& c, const json& v, const Reject& no) {
         c.data.val_fraction = v;
         if (!(c.data.val_fraction >= 0 && c.data.val_fraction < 1)) no("must be in [0, 1)");
       }},
      {"data.split_seed", 0, "seed of the document split",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (v.get<int64_t>() < 0) no("must be ≥ 0");
         c.data.split_seed = v.get<uint64_t>();
       }},
      {"data.separator_token", -1, "≥ 0: this id between documents (-1: none, as published)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.data.separator_token = v) < -1) no("must be ≥ -1 (-1: none)");
       }},
      {"data.sampler", "random", "\"random\" windows (published) or \"epoch\" (each window once per epoch)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.sampler = v) != "random" && c.sampler != "epoch") no("must be \"random\" or \"epoch\"");
       }},
      {"data.batch_size", 4, "windows per micro-batch",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.batch_size = v) < 1) no("must be at least 1"); }},
      {"data.cache_dir", "data/cache", "where token caches are kept",
       [](TrainConfig& c, const json& v, const Reject&) { c.cache_dir = v; }},
      // Optimisation.
      {"optim.lr", 3e-4, "peak learning rate",
       [](TrainConfig& c, const json& v, const Reject& no) { if (!((c.schedule.peak = v) > 0)) no("must be positive"); }},
      {"optim.lr_floor", 0.1, "the final rate as a fraction of the peak",
       [](TrainConfig& c, const json& v, const Reject& no) {
         c.schedule.floor = v;
         if (!(c.schedule.floor >= 0 && c.schedule.floor <= 1)) no("must be in [0, 1]");
       }},
      {"optim.warmup_iters", 100, "steps of linear warm-up",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.schedule.warmup = v) < 0) no("must be ≥ 0"); }},
      {"optim.lr_decay_iters", 0, "length of the cosine decay (0: train.max_iters)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.schedule.max_iters = v) < 0) no("must be ≥ 0 (0: train.max_iters)");
       }},
      {"optim.weight_decay", 0.01, "AdamW's decoupled weight decay",
       [](TrainConfig& c, const json& v, const Reject& no) { if (!((c.adamw.weight_decay = v) >= 0)) no("must be ≥ 0"); }},
      {"optim.decay_all", true, "decay every parameter (published); false: not biases, norms, embeddings, mixing vectors",
       [](TrainConfig& c, const json& v, const Reject&) { c.adamw.decay_all = v; }},
      {"optim.beta1", 0.9, "AdamW β1",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (!((c.adamw.beta1 = v) >= 0 && c.adamw.beta1 < 1)) no("must be in [0, 1)");
       }},
      {"optim.beta2", 0.999, "AdamW β2",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (!((c.adamw.beta2 = v) >= 0 && c.adamw.beta2 < 1)) no("must be in [0, 1)");
       }},
      {"optim.eps", 1e-8, "AdamW ε",
       [](TrainConfig& c, const json& v, const Reject& no) { if (!((c.adamw.eps = v) > 0)) no("must be positive"); }},
      {"optim.grad_clip", 1.0, "global gradient-norm limit (0: no clipping)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (!((c.grad_clip = v) >= 0)) no("must be ≥ 0 (0: no clipping)");
       }},
      {"optim.grad_accum", 1, "micro-batches per step",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.grad_accum = v) < 1) no("must be at least 1"); }},
      // The run.
      {"train.max_iters", 5000, "optimizer steps to train to",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.max_iters = v) < 1) no("must be at least 1"); }},
      {"train.seed", 0, "seed of initialisation, sampling and samples",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (v.get<int64_t>() < 0) no("must be ≥ 0");
         c.seed = v.get<uint64_t>();
       }},
      {"train.device", "auto", "\"auto\", \"cpu\", \"cuda\" or \"cuda:N\"",
       [](TrainConfig& c, const json& v, const Reject&) { c.device = v; }},
      {"train.dtype", "float32", "\"float32\", or \"bfloat16\" autocast (CUDA only)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.dtype = v) != "float32" && c.dtype != "bfloat16") no("must be \"float32\" or \"bfloat16\"");
       }},
      {"train.on_nonfinite", "stop", "a NaN or infinite loss: \"stop\" (fail) or \"skip\" the update",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.on_nonfinite = v) != "stop" && c.on_nonfinite != "skip") no("must be \"stop\" or \"skip\"");
       }},
      // Logging.
      {"logging.log_interval", 10, "steps between train/* points and progress lines",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.log_interval = v) < 1) no("must be at least 1"); }},
      {"logging.eval_interval", 500, "steps between validations and samples (0: validation only at checkpoints, no samples)",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.eval_interval = v) < 0) no("must be ≥ 0 (0: off)"); }},
      {"logging.eval_batches", 20, "validation windows = eval_batches × batch_size × ranks",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.eval_batches = v) < 1) no("must be at least 1"); }},
      {"logging.watch_interval", 0, "steps between parameter and gradient histograms (0: off)",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.watch_interval = v) < 0) no("must be ≥ 0 (0: off)"); }},
      {"logging.prompts", {"hello", "user: tell me", "once upon a time"}, "prompts of the samples table",
       [](TrainConfig& c, const json& v, const Reject& no) { c.prompts = non_empty_strings(v, no); }},
      {"logging.sample_tokens", 50, "tokens generated per sample (0: no samples)",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.sample_tokens = v) < 0) no("must be ≥ 0"); }},
      {"logging.temperature", 0.8, "sampling temperature of the samples",
       [](TrainConfig& c, const json& v, const Reject& no) { if (!((c.temperature = v) >= 0)) no("must be ≥ 0"); }},
      {"logging.top_k", 40, "top-k of the samples (0: off)",
       [](TrainConfig& c, const json& v, const Reject& no) { if ((c.top_k = v) < 0) no("must be ≥ 0 (0: off)"); }},
      // Checkpoints.
      {"checkpoint.interval", 1000, "steps between checkpoints (0: only at the end and when stopped)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.checkpoint_interval = v) < 0) no("must be ≥ 0 (0: only at the end)");
       }},
      {"checkpoint.keep_last", 0, "keep the newest N checkpoints, plus best and used ones (0: keep all)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.checkpoint_keep_last = v) < 0) no("must be ≥ 0 (0: keep every checkpoint)");
       }},
      // Data-parallel training (docs/distributed.md).
      {"distributed.ranks", 1,
       "processes a coordinator runs this job as (`i3lab train` alone takes them from torchrun's or Slurm's variables)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.distributed.ranks = v) < 1 || c.distributed.ranks > 1024) no("must be in 1..1024");
       }},
      {"distributed.backend", "auto", "\"auto\" (NCCL on CUDA devices, Gloo on CPUs), \"gloo\" or \"nccl\"",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if ((c.distributed.backend = v) != "auto" && c.distributed.backend != "gloo" && c.distributed.backend != "nccl")
           no("must be \"auto\", \"gloo\" or \"nccl\"");
       }},
      {"distributed.timeout_s", 300.0, "seconds a rank waits in a collective for the others before failing",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (!((c.distributed.timeout_s = v) >= 1 && c.distributed.timeout_s <= 86400)) no("must be in 1..86400");
       }},
      {"distributed.leader_timeout_s", 3600.0,
       "seconds the other ranks wait while rank 0 works alone: fetching and restoring a checkpoint, writing one, samples",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (!((c.distributed.leader_timeout_s = v) >= 1 && c.distributed.leader_timeout_s <= 7 * 86400)) no("must be in 1..604800");
       }},
      {"distributed.bucket_mb", 25.0, "MiB of gradients per allreduce bucket (DDP's default)",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (!((c.distributed.bucket_mb = v) > 0)) no("must be positive");
       }},
      {"distributed.first_bucket_mb", 1.0, "MiB of the first bucket, sent as soon as backward begins to produce gradients",
       [](TrainConfig& c, const json& v, const Reject& no) {
         if (!((c.distributed.first_bucket_mb = v) > 0)) no("must be positive");
       }},
      {"distributed.overlap", true, "send buckets during backward (false: all after it, to measure the overlap)",
       [](TrainConfig& c, const json& v, const Reject&) { c.distributed.overlap = v; }},
  };
  return table;
}

// The slot of dotted `path` in `j`, created as objects on the way.
json& slot(json& j, const std::string& path) {
  json* node = &j;
  for (size_t start = 0;;) {
    const size_t dot = path.find('.', start);
    node = &(*node)[path.substr(start, dot == std::string::npos ? std::string::npos : dot - start)];
    if (dot == std::string::npos) return *node;
    start = dot + 1;
  }
}

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
    throw std::invalid_argument(origin + ": " + (path.empty() ? "the config" : util::brief(path)) + " must be a JSON object");
  for (auto it = user.begin(); it != user.end(); ++it) {
    const std::string key = path.empty() ? it.key() : path + "." + it.key();
    if (!base.contains(it.key()))
      throw std::invalid_argument(origin + ": unknown key " + util::brief(key) + " (known here: " + known_keys(base) + ")");
    json& slot = base[it.key()];
    const json& value = it.value();
    if (key == "model") {  // preset + model_config.h keys, checked by ModelConfig
      if (!value.is_object()) throw std::invalid_argument(origin + ": \"model\" must be a JSON object");
      slot.update(value);
    } else if (slot.is_object()) {
      merge(slot, value, key, origin);
    } else {
      const bool ok = slot.is_number_float() ? value.is_number() : kind(slot) == kind(value);
      if (!ok) throw std::invalid_argument(origin + ": " + util::brief(key) + " must be " + kind(slot) + ", got " + util::brief(value));
      slot = value;
    }
  }
}

// "optim.lr=1e-3" into `j`. The value is JSON when it parses as JSON, else a string.
void apply_override(json& j, const std::string& assignment) {
  const auto eq = assignment.find('=');
  if (eq == std::string::npos || eq == 0)
    throw std::invalid_argument("--set expects section.key=value, got " + util::brief(assignment));
  json value = util::try_parse_json(assignment.substr(eq + 1)).value_or(json(assignment.substr(eq + 1)));
  json* node = &j;
  const std::string key = assignment.substr(0, eq);
  for (size_t start = 0;;) {
    const auto dot = key.find('.', start);
    if (!node->is_object()) *node = json::object();
    node = &(*node)[key.substr(start, dot == std::string::npos ? std::string::npos : dot - start)];
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  *node = value;
}

}  // namespace

json default_train_config() {
  json j = json::object();
  for (const Key& k : keys()) slot(j, k.path) = k.default_value;
  return j;
}

std::vector<TrainConfigKey> train_config_keys() {
  std::vector<TrainConfigKey> out;
  for (const Key& k : keys()) out.push_back({k.path, k.default_value, k.meaning});
  return out;
}

TrainConfig TrainConfig::parse(const json& j, const std::string& origin, const std::vector<std::string>& overrides) {
  json user = j;
  if (!user.is_object()) throw std::invalid_argument(origin + ": the config must be a JSON object");
  for (const auto& o : overrides) apply_override(user, o);
  json r = default_train_config();
  merge(r, user, "", origin);

  TrainConfig c;
  for (const Key& k : keys()) {
    if (!k.read) continue;
    k.read(c, slot(r, k.path), [&](const std::string& why) {
      throw std::invalid_argument(origin + ": \"" + k.path + "\" " + why);
    });
  }

  // The model: a preset, with the config's shape keys over it.
  json model = r["model"];
  if (!model["preset"].is_string()) throw std::invalid_argument(origin + ": \"model.preset\" must be a string");
  c.model_preset = model["preset"];
  model.erase("preset");
  try {
    c.model = ModelConfig::from_json(model, origin, preset(c.model_preset));
  } catch (const std::invalid_argument& e) {
    if (std::string(e.what()).rfind(origin, 0) == 0) throw;
    throw std::invalid_argument(origin + ": \"model.preset\" is not a preset: " + e.what());
  }
  r["model"] = json::object({{"preset", c.model_preset}});
  r["model"].update(c.model.to_json());

  const json& sources = r["data"]["sources"];
  if (sources.empty())
    throw std::invalid_argument(origin + ": \"data.sources\" is required: a list such as [{\"path\": \"data/train.txt\"}]");
  for (size_t i = 0; i < sources.size(); ++i)
    c.sources.push_back(parse_source(sources[i], origin + ": data.sources[" + std::to_string(i) + "]"));

  // Keys that depend on each other.
  const int64_t decay_iters = c.schedule.max_iters;
  c.schedule.max_iters = decay_iters > 0 ? decay_iters : c.max_iters;
  if (decay_iters > 0 && c.schedule.warmup > 0 && c.schedule.max_iters <= c.schedule.warmup)
    throw std::invalid_argument(origin + ": \"optim.lr_decay_iters\" must be larger than optim.warmup_iters");

  c.resolved_ = std::move(r);
  return c;
}

TrainConfig TrainConfig::load(const std::string& path, const std::vector<std::string>& overrides) {
  return parse(util::read_json_file(path), path, overrides);
}

void TrainConfig::set_vocab_size(int64_t n) {
  model.vocab_size = n;
  resolved_["model"]["vocab_size"] = n;
}

json with_absolute_paths(json resolved, const std::string& base_dir) {
  auto absolute = [&](json& v) {
    if (!v.is_string()) return;
    const std::string path = v.get<std::string>();
    if (!path.empty() && path[0] != '/') v = (std::filesystem::path(base_dir) / path).lexically_normal().string();
  };
  json& data = resolved["data"];
  absolute(data["vocab"]);
  absolute(data["cache_dir"]);
  for (json& source : data["sources"]) absolute(source["path"]);
  return resolved;
}

}  // namespace i3
