// Evaluation as a job: what `i3lab eval` does, as one library call a worker can make too.
//
// The model is a model folder, or a checkpoint artifact of a tracker database. The score is
// the mean next-token loss over non-overlapping context-length windows of a data source (the
// whole source, or the held-out documents a training run on it would keep). With a database,
// the evaluation is a tracked run of its own (tag "eval"): val/loss and val/perplexity at the
// checkpoint's step, a samples table, and the artifact it used (lineage).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/data/token_cache.h"

namespace i3 {

struct EvalJob {
  std::string model;               // a folder, or "artifact:NAME[:ALIAS|:vN]" of the database
  std::string db;                  // the database: tracks the evaluation as a run when not empty
  std::string artifact_db = "i3lab.db";  // where artifact: models are looked up when db is empty
  DataSource data;
  bool val_split = false;          // only the documents training holds out (options.val_fraction)
  DataOptions split;               // val_fraction, split_seed
  std::string cache_dir;            // the token cache's folder; "": a temporary one, removed after
  int64_t max_windows = 0;         // > 0: this many windows, evenly spread
  int64_t batch = 8;
  std::string device = "cpu";
  // The tracked run.
  std::string project = "i3", name;
  std::vector<std::string> prompts = {"hello", "user: tell me", "once upon a time"};
  int64_t sample_tokens = 50;
};

struct EvalReport {
  double loss = 0, perplexity = 0;
  int64_t tokens = 0, windows = 0;
  int64_t run_id = 0;                 // the tracked run; 0 without a database
  std::vector<std::string> warnings;  // about the model folder (config.json disagreements)
};

// Throws std::invalid_argument for bad options, std::runtime_error (naming the file) for an
// unreadable model or data source or one with nothing to evaluate, NotFound for an unknown
// artifact.
EvalReport run_evaluation(const EvalJob& job);

}  // namespace i3
