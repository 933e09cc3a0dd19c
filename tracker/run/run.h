// tracker::Run — the logging API, like W&B's run object:
//
//   tracker::Store store("i3lab.db");
//   tracker::Run run = tracker::Run::create(store, {.project = "i3", .config = cfg});
//   run.log(step, {{"train/loss", 2.31}, {"train/learning_rate", 3e-4}});
//   run.log_table("samples", step, {"prompt", "output"}, {{"hello", "hello there"}});
//   run.finish();
//
// Every call returns without waiting for the disk (see Store); flush() waits for it.
// One Run may be used from several threads.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tracker/store/artifacts.h"
#include "tracker/store/store.h"

namespace tracker {

struct RunSpec {
  std::string project = "default";
  std::string name;          // empty: "run-" + the first 8 characters of the uid
  std::string group;
  std::vector<std::string> tags;
  std::string notes;
  nlohmann::json config = nlohmann::json::object();
};

// Which extreme of a metric is its best value in summaries.
enum class Goal { kNone, kMinimize, kMaximize };

// Final statuses accepted by finish().
bool is_final_status(const std::string& status);  // finished failed stopped crashed early-stopped cancelled

class Run {
 public:
  // Creates a run with status "running". Throws std::invalid_argument for names over
  // kMaxNameBytes or a config over kMaxJsonBytes / not an object.
  static Run create(Store& store, const RunSpec& spec);
  // Re-opens run `run_id` (status back to "running"). With from_step >= 0, first deletes its
  // metric points, table rows and histograms after from_step in one transaction and brings
  // summaries and tiers back to match, so a restarted run's curves stay one line. System
  // metrics ("system/..." keys, stepped by sample) are not rewound. Throws for an unknown id.
  static Run resume(Store& store, int64_t run_id, int64_t from_step = -1);

  int64_t id() const { return id_; }
  const std::string& uid() const { return uid_; }

  // Metric points at `step` (any order of steps; a repeated step replaces the value).
  void log(int64_t step, std::initializer_list<std::pair<std::string_view, double>> values);
  void log(int64_t step, const std::vector<std::pair<std::string, double>>& values);
  // Marks which of min/max is the key's best value in summaries (like wandb.define_metric).
  void define_metric(const std::string& key, Goal goal);
  // A table at `step` (e.g. generation samples): `columns` a JSON array of names, `rows` a JSON
  // array of arrays of that length. Logging the same name and step again replaces it.
  void log_table(const std::string& name, int64_t step, const nlohmann::json& columns, const nlohmann::json& rows);
  // A distribution at `step` as equal-width bins over [min, max] of the finite values.
  void log_histogram(const std::string& key, int64_t step, const std::vector<double>& values, int bins = 64);
  // Or bins computed by the caller: counts over equal-width bins spanning [lo, hi].
  void log_histogram(const std::string& key, int64_t step, double lo, double hi, const std::vector<int64_t>& counts);
  // One line of console output; stream is "stdout" or "stderr".
  void log_console(const std::string& stream, const std::string& line);
  // Stores a file or folder as a version of artifact `name` made by this run (artifacts.h).
  ArtifactVersion log_artifact(const std::string& name, const std::string& type, const std::string& path,
                               const nlohmann::json& metadata = nlohmann::json::object(),
                               const std::vector<std::string>& aliases = {}) {
    return tracker::log_artifact(*store_, uid_, name, type, path, metadata, aliases);
  }
  // Resolves "NAME[:ALIAS|:vN]" and records this run as its user (lineage).
  ArtifactVersion use_artifact(const std::string& ref) { return tracker::use_artifact(*store_, uid_, ref); }
  // Replaces the run's config (a JSON object), e.g. when a resumed run trains further with
  // changed settings; like wandb.config.update(..., allow_val_change=True). Throws
  // std::invalid_argument as create() does.
  void set_config(const nlohmann::json& config);
  // Records that the run is alive (the dashboard marks runs without one as lost).
  void heartbeat();
  // Sets a final status (is_final_status) and the finish time, then flushes.
  void finish(const std::string& status = "finished");
  // Waits until everything logged so far is committed.
  void flush() { store_->flush(); }

 private:
  Run(Store* store, int64_t id, std::string uid, int64_t next_console_seq)
      : store_(store), id_(id), uid_(std::move(uid)), console_seq_(next_console_seq) {}

  Store* store_;
  int64_t id_;
  std::string uid_;
  std::atomic<int64_t> console_seq_;

 public:
  Run(Run&& other) noexcept
      : store_(other.store_), id_(other.id_), uid_(std::move(other.uid_)), console_seq_(other.console_seq_.load()) {}
};

}  // namespace tracker
