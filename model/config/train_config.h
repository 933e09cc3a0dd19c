// The training configuration: one JSON file with the model, data, optimisation, logging and
// checkpoint settings of a run (like nanoGPT's config files, as JSON). Every key has a default
// — the published i3-80M recipe (spec: i3-model.md §5) — so a config names only what differs:
//
//   {
//     "project": "i3", "name": "", "group": "", "tags": [], "notes": "",
//     "model": {"preset": "i3-80m"},            // plus any model_config.h key: {"d_model": 256}
//     "data": {
//       "vocab": "",                             // REQUIRED: a chunk vocabulary (tokenizer build)
//       "sources": [],                           // REQUIRED: [{"path", "format", "field",
//                                                //   "separator", "weight"}] (data.h DataSource)
//       "val_fraction": 0.01, "split_seed": 0,
//       "separator_token": -1,                   // ≥ 0: this id between documents
//       "sampler": "random",                     // "random" (published) or "epoch"
//       "batch_size": 4, "cache_dir": "data/cache"
//     },
//     "optim": {
//       "lr": 3e-4, "lr_floor": 0.1, "warmup_iters": 100,
//       "lr_decay_iters": 0,                     // cosine length; 0 → train.max_iters
//       "weight_decay": 0.01, "decay_all": true, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8,
//       "grad_clip": 1.0, "grad_accum": 1
//     },
//     "train": {
//       "max_iters": 5000, "seed": 0,
//       "device": "auto",                        // "cpu", "cuda", "cuda:N", "auto"
//       "dtype": "float32",                      // or "bfloat16": autocast, CUDA only
//       "on_nonfinite": "stop"                   // or "skip" the update
//     },
//     "logging": {
//       "log_interval": 10, "eval_interval": 500, "eval_batches": 20, "watch_interval": 0,
//       "prompts": ["hello", "user: tell me", "once upon a time"],
//       "sample_tokens": 50, "temperature": 0.8, "top_k": 40
//     },
//     "checkpoint": {"interval": 1000}
//   }
//
// Unknown keys and values of the wrong type are errors naming the file and the key.
// Relative paths (data.vocab, sources, cache_dir) are taken as given, from the working
// directory, as nanoGPT does.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config/model_config.h"
#include "model/data/token_cache.h"
#include "model/config/optim.h"

namespace i3 {

struct TrainConfig {
  // Run identity in the tracker.
  std::string project, name, group, notes;
  std::vector<std::string> tags;

  std::string model_preset;
  ModelConfig model;  // vocab_size 0 until the vocabulary is read (then: at least its size)

  std::string vocab;
  std::vector<DataSource> sources;
  DataOptions data;
  std::string sampler;  // "random" or "epoch"
  int64_t batch_size = 0;
  std::string cache_dir;

  LrSchedule schedule;  // max_iters = optim.lr_decay_iters (or train.max_iters)
  AdamWOptions adamw;
  double grad_clip = 0;  // 0: no clipping
  int64_t grad_accum = 0;

  int64_t max_iters = 0;  // optimizer steps to train to
  uint64_t seed = 0;
  std::string device, dtype, on_nonfinite;

  int64_t log_interval = 0, eval_interval = 0, eval_batches = 0, watch_interval = 0;  // 0: off
  std::vector<std::string> prompts;
  int64_t sample_tokens = 0, top_k = 0;
  double temperature = 0;

  int64_t checkpoint_interval = 0;  // 0: only at the end (and when stopped)
  // Keep only the newest N checkpoints, plus those an alias ("best") names or another run used.
  int64_t checkpoint_keep_last = 0;  // 0: keep all

  // Reads a config object (defaults for missing keys) with `overrides` ("optim.lr=1e-3"; the
  // value is JSON, or a plain string) applied on top. Throws std::invalid_argument naming
  // `origin` and the key for unknown keys, wrong types and out-of-range values.
  static TrainConfig parse(const nlohmann::json& j, const std::string& origin,
                           const std::vector<std::string>& overrides = {});
  // Reads a JSON file (errors name the file).
  static TrainConfig load(const std::string& path, const std::vector<std::string>& overrides = {});

  // Every setting, defaults included, with the model shape spelled out: what the tracker
  // stores as the run's config and what parse() reads back on resume.
  nlohmann::json to_json() const { return resolved_; }
  // Sets model.vocab_size once the vocabulary is known (here and in to_json()).
  void set_vocab_size(int64_t n);

 private:
  nlohmann::json resolved_;
};

// The default config (every key), for `i3lab train --print-defaults` and the docs.
nlohmann::json default_train_config();

}  // namespace i3
