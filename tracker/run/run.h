// tracker::Run — the logging API, like W&B's run object:
//
//   tracker::Store store("i3lab.db");
//   tracker::Run run = tracker::Run::create(store, {.project = "i3", .config = cfg});
//   run.log(step, {{"train/loss", 2.31}, {"train/learning_rate", 3e-4}});
//   run.log_table("samples", step, {"prompt", "output"}, {{"hello", "hello there"}});
//   run.finish();
//
// A Run turns each call into an event (tracker/events/events.h), numbers it in its run's
// sequence and hands it to a Sink (a Store, or a relay): calls return without waiting for the
// disk (flush() waits); those that report what they made (create, resume, artifacts) wait for
// it. Bad input throws std::invalid_argument before anything is sent. One Run may be used from
// several threads; one run must have one Run at a time.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tracker/store/sink.h"
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

class Run {
 public:
  // Creates a run with status "running" and a new uid. Throws std::invalid_argument for names
  // over kMaxNameBytes or a config over kMaxJsonBytes / not an object.
  static Run create(Sink& sink, const RunSpec& spec);
  // Re-opens run `run_id` of `store` (status back to "running"), continuing its event
  // sequence. With from_step >= 0, first deletes its metric points, table rows and histograms
  // after from_step and brings summaries and tiers back to match, so a restarted run's curves
  // stay one line. System metrics ("system/..." keys, stepped by sample) are not rewound.
  // Throws NotFound for an unknown id.
  static Run resume(Store& store, int64_t run_id, int64_t from_step = -1);

  Run(Run&& other) noexcept;
  Run(const Run&) = delete;
  Run& operator=(const Run&) = delete;

  int64_t id() const { return id_; }  // in the sink's database
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
  // One line of console output; stream is "stdout" or "stderr". Lines over kMaxLineBytes are cut.
  void log_console(const std::string& stream, const std::string& line);
  // Replaces the run's config (a JSON object), e.g. when a resumed run trains further with
  // changed settings; like wandb.config.update(..., allow_val_change=True).
  void set_config(const nlohmann::json& config);
  // Records that the run is alive (the dashboard marks runs without one as lost).
  void heartbeat();
  // Sets a final status (finished failed stopped crashed early-stopped cancelled) and the
  // finish time, then flushes.
  void finish(const std::string& status = "finished");
  // Waits until everything logged so far is committed.
  void flush() { sink_->flush(); }

  // Artifacts (tracker/events/artifact.h). Stores the file or folder at `path` (a folder:
  // every regular file below it) as a version of artifact `name` made by this run and returns
  // it; content equal to an existing version returns that version. `aliases` move to it.
  // Throws std::invalid_argument for bad names, a type that differs from the artifact's or an
  // empty or missing path; std::runtime_error for unreadable files.
  ArtifactVersion log_artifact(const std::string& name, const std::string& type, const std::string& path,
                               const nlohmann::json& metadata = nlohmann::json::object(),
                               const std::vector<std::string>& aliases = {});
  // Resolves "NAME[:ALIAS|:vN]" and records this run as its user (lineage). Throws NotFound.
  ArtifactVersion use_artifact(const std::string& ref);
  // Deletes artifact version `ref` as delete_artifact_version() (store.h) does.
  ArtifactVersion delete_artifact_version(const std::string& ref);
  // A new, empty folder for files this run is about to log as an artifact, on the artifact
  // store's file system; `what` names it. The caller removes it.
  std::string scratch_dir(const std::string& what) { return sink_->content().scratch_dir(what); }

 private:
  Run(Sink* sink, int64_t id, std::string uid, uint64_t last_seq)
      : sink_(sink), id_(id), uid_(std::move(uid)), last_seq_(last_seq) {}
  // Checks `body`, numbers it and submits it: in order, whatever the thread.
  void send(EventBody body);
  // The same, waiting for what it made.
  Applied send_and_wait(EventBody body);

  Sink* sink_;
  int64_t id_;
  std::string uid_;
  std::mutex mu_;
  uint64_t last_seq_;
};

}  // namespace tracker
