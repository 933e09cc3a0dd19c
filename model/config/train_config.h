// The training configuration: one JSON file with the model, data, optimisation, logging and
// checkpoint settings of a run (like nanoGPT's config files, as JSON). Every key has a default
// — the published i3-80M recipe (spec: i3-model.md §5) — so a config names only what differs:
//
//   {"model": {"preset": "i3-demo"},
//    "data": {"vocab": "data/demo/vocab.json", "sources": [{"path": "data/demo/*.txt"}]},
//    "optim": {"lr": 2e-3}, "train": {"max_iters": 600}}
//
// The keys — name, default, check and meaning — are one table in train_config.cc, the single
// source that the parser, --print-defaults, `i3lab train --print-keys` and docs/training.md
// (checked by a test) follow. Sections: the run's identity (project, name, group, tags, notes),
// model (a preset plus any model_config.h key), data, optim, train, logging, checkpoint,
// distributed.
//
// Unknown keys and values of the wrong type are errors naming the file and the dotted key.
// Relative paths (data.vocab, sources, cache_dir) are taken as given, from the working
// directory, as nanoGPT does. No LibTorch: the control plane expands and checks configs too.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "model/config/model_config.h"
#include "model/config/optim.h"
#include "model/data/token_cache.h"

namespace i3 {

// The "distributed" section: data-parallel training over c10d (model/dist/data_parallel.h).
struct DistributedConfig {
  int64_t ranks = 1;               // processes a coordinator starts; `i3lab train` takes its launcher's
  std::string backend = "auto";    // "auto" (NCCL on CUDA, else Gloo), "gloo" or "nccl"
  double timeout_s = 300;          // each collective
  double leader_timeout_s = 3600;  // waiting while rank 0 works alone (start-up, checkpoints, samples)
  double bucket_mb = 25, first_bucket_mb = 1;
  bool overlap = true;             // send gradient buckets during backward
};

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

  DistributedConfig distributed;

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

// `resolved` (TrainConfig::to_json()) with its relative paths — data.vocab, each source's path
// and data.cache_dir — made absolute against `base_dir`: a config submitted to a coordinator
// means what it means where it was submitted, whichever folder a worker runs it in.
nlohmann::json with_absolute_paths(nlohmann::json resolved, const std::string& base_dir);

// The default config (every key), for `i3lab train --print-defaults`.
nlohmann::json default_train_config();

// One key of the table: its dotted path, default and meaning (`i3lab train --print-keys`).
struct TrainConfigKey {
  std::string path;
  nlohmann::json default_value;
  std::string meaning;
};
std::vector<TrainConfigKey> train_config_keys();

}  // namespace i3
