// Reading the tracker database: what the CLI and the dashboard show. Each Query holds its own
// read-only connection, so reads never wait for the writer (WAL).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "tracker/db/sqlite.h"
#include "tracker/events/artifact.h"

namespace tracker {

// A run as stored. Text columns are as stored: a damaged file may hold invalid UTF-8, so dump
// to_json() with nlohmann::json::error_handler_t::replace.
struct RunRecord {
  int64_t id = 0;
  std::string uid, project, name, group, notes, status;
  // A stored config that is not a JSON object, or tags that are not a JSON array of strings
  // (text that is not JSON, nested deeper than util::kMaxJsonDepth, or of another kind: a
  // damaged file), are read as null, and config_error / tags_error say so; "" when read.
  nlohmann::json tags, config;
  std::string config_error, tags_error;
  // key → {"last", "last_step", "min", "max", "count", "goal", "best"}; NaN is null in JSON.
  nlohmann::json summary;
  double created_at = 0, heartbeat_at = 0, finished_at = 0;  // finished_at 0: not finished
  // Every field above; "config_error" and "tags_error" only when set.
  nlohmann::json to_json() const;
};

struct RunFilter {
  std::string project;  // empty: all
  std::string status;   // empty: all
  std::string tag;      // empty: all
  // Conditions PATH OP VALUE, all of which a run must meet, e.g. "config.optim.lr>=0.001",
  // "summary.val/loss.min<2", "name=foo":
  //   PATH   config.KEY[.KEY…] (nested config keys); summary.KEY[.min|.max|.best|.last] (a
  //          metric's summary, .last when no field is named); or one of id, uid, name, status,
  //          group, project, created_at, heartbeat_at, finished_at.
  //   OP     = != < <= > >=
  //   VALUE  text, or a JSON string literal ("…") for text that is empty, has spaces at its
  //          ends or starts with one of = ! < >. < <= > >= need a number and match runs whose
  //          value is a number; = and != compare numbers as numbers and anything else as text
  //          (a value that is not a string by its JSON text).
  // Spaces around PATH and VALUE are ignored. A run without the value (a key it does not
  // have, NaN, null) fails the condition; that is no error. A malformed condition is.
  std::vector<std::string> where;
  // A PATH as above. Numbers sort as numbers, before other values (as JSON text); runs without
  // the value sort last.
  std::string sort_by = "created_at";
  bool descending = false;
  size_t limit = 0;  // 0: no limit
};

// One condition of RunFilter::where, parsed.
struct RunCondition {
  enum class Op { kEq, kNe, kLt, kLe, kGt, kGe };
  std::string path;
  Op op = Op::kEq;
  std::string text;              // VALUE as text, unquoted
  std::optional<double> number;  // VALUE as a number when it is one (unquoted); set for < <= > >=
};

// Parses one condition of RunFilter::where. Throws std::invalid_argument naming the condition
// and what is allowed: for no operator or an unknown one ("=>", "=="), a missing PATH or VALUE,
// a PATH that is not one of the forms above, a quoted VALUE that is not a JSON string, or a
// VALUE that is not a number after < <= > >=.
RunCondition parse_run_condition(const std::string& condition);
// Throws std::invalid_argument naming `path` unless it is a PATH of RunFilter::where.
void check_run_path(const std::string& path);
// Checks every condition and the sort path of `filter`, as Query::runs does before reading:
// for a caller that reports a malformed filter before it opens a database.
void check_run_filter(const RunFilter& filter);

// One bucket of a downsampled series: min and max of its values (NaN ignored; NaN if all
// were NaN), the value at its last step, and how many points it holds.
struct Bucket {
  int64_t first_step = 0, last_step = 0;
  double min = 0, max = 0, last = 0, last_wall = 0;
  int64_t count = 0;
};

class Query {
 public:
  // Opens `path` read-only. Throws DbError for a missing, foreign, corrupt or newer file.
  explicit Query(const std::string& path);

  // Throws std::invalid_argument for a malformed filter (check_run_filter), before reading.
  std::vector<RunRecord> runs(const RunFilter& filter = {});
  // Throws NotFound naming the run if there is none with this id.
  RunRecord run(int64_t id);
  // Whether there is a run with this id (one indexed lookup; run() also reads its summaries).
  bool has_run(int64_t id);
  std::vector<std::string> metric_keys(int64_t run_id);
  // Steps in [x0, x1] of one series in at most about `buckets` buckets, from the finest
  // downsampling tier that needs no more than ~16 rows per bucket (raw points for short
  // ranges). Never reads a whole long series.
  std::vector<Bucket> series(int64_t run_id, const std::string& key, int64_t x0, int64_t x1, int buckets);
  // The first and last step of one series; nothing if it has no points.
  std::optional<std::pair<int64_t, int64_t>> step_range(int64_t run_id, const std::string& key);
  // The steps of one series logged between wall times w0 and w1 (unix seconds), for charts
  // with time on the x-axis: pass them to series(). Found by descending the tiers (a few
  // dozen indexed rows), assuming wall time grows with step within a run (it does for a run
  // logged by one process, resumed or not). Empty if no point lies in [w0, w1].
  std::optional<std::pair<int64_t, int64_t>> steps_between(int64_t run_id, const std::string& key, double w0, double w1);
  // Raw points (step, value, wall) of one series in [x0, x1].
  std::vector<Bucket> points(int64_t run_id, const std::string& key, int64_t x0, int64_t x1);
  // Tables: the steps at which `name` was logged, and one of them ({"columns", "rows"}; null if
  // there is none at `step`). A stored table that is not JSON arrays (a damaged file) is
  // {"columns": null, "rows": null, "error": "stored table is not valid JSON arrays"}.
  std::vector<int64_t> table_steps(int64_t run_id, const std::string& name);
  nlohmann::json table(int64_t run_id, const std::string& name, int64_t step);
  // The names of the tables logged to a run, sorted.
  std::vector<std::string> table_names(int64_t run_id);
  // The keys of a run's histograms, sorted, and those of one key: at most `max_steps` of them,
  // spread evenly over its steps (all when there are fewer), oldest first, as
  // [{"step", "lo", "hi", "counts": [n…]}] (bins of equal width over [lo, hi]). A stored count
  // list that is not a JSON array of integers (a damaged file) reads as [].
  std::vector<std::string> histogram_keys(int64_t run_id);
  nlohmann::json histograms(int64_t run_id, const std::string& key, int max_steps);
  // Changes whenever another connection commits to the file (SQLite's data_version): a live
  // view compares it first and computes the versions below only when it moved.
  int64_t data_version();
  // Text that changes whenever run `id` does: every sequenced event it applies moves its
  // event seq, and its status covers the unsequenced "crashed" the coordinator sets; "" if
  // there is no such run. What a live view polls, cheaply, to know when to read again.
  std::string run_version(int64_t id);
  // The same for the list of runs (any run created, changed, finished or deleted).
  std::string runs_version();
  // The same for the coordinator's jobs and workers (empty tables outside a coordinator's
  // database).
  std::string jobs_version();
  std::string workers_version();
  // Projects by name with their number of runs: [{"name", "runs"}].
  nlohmann::json projects();
  // Console lines in order: [{"seq", "wall", "stream", "line"}].
  nlohmann::json console(int64_t run_id, int64_t after_seq = -1, int64_t limit = 1000);
  // The run's history as CSV: one row per step, one column per key (sorted), NaN and ±inf
  // written as nan/inf/-inf, missing values empty. System metrics (system/* keys) are sampled
  // on their own axis (sample number, every 10 s) rather than at training steps, so they are
  // left out; with `system`, only they are written, one row per sample (column "sample").
  void export_history_csv(int64_t run_id, std::ostream& out, bool system = false);

  // Artifact versions (tracker/events/artifact.h). `ref` is "NAME", "NAME:ALIAS" or "NAME:vN"
  // (NAME alone: its latest). Throws NotFound if nothing matches. Stored metadata that is not a
  // JSON object (a damaged file) reads as {}.
  ArtifactVersion artifact(const std::string& ref);
  // Every version of artifact `name` (of every artifact if empty), by name, then version.
  std::vector<ArtifactVersion> artifacts(const std::string& name = "");
  // The versions run `run_uid` logged or used, by name, then version.
  std::vector<ArtifactVersion> run_artifacts(const std::string& run_uid);
  // Copies `version`'s files into folder `dest` (created), verifying each file's SHA-256.
  // Throws std::runtime_error naming the file if one is missing or damaged.
  void fetch_artifact(const ArtifactVersion& version, const std::string& dest);

  Db& db() { return *db_; }

 private:
  // Runs matching `filter`, unsorted; only run `only_id` when it is not 0.
  std::vector<RunRecord> load(const RunFilter& filter, int64_t only_id);
  std::unique_ptr<Db> db_;
};

}  // namespace tracker
