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

struct RunRecord {
  int64_t id = 0;
  std::string uid, project, name, group, notes, status;
  nlohmann::json tags, config;
  // key → {"last", "last_step", "min", "max", "count", "goal", "best"}; NaN is null in JSON.
  nlohmann::json summary;
  double created_at = 0, heartbeat_at = 0, finished_at = 0;  // finished_at 0: not finished
  nlohmann::json to_json() const;
};

struct RunFilter {
  std::string project;  // empty: all
  std::string status;   // empty: all
  std::string tag;      // empty: all
  // Conditions "config.lr>=0.001", "summary.val/loss<2", "name=foo": PATH OP VALUE with OP one
  // of = != < <= > >=; numbers compare as numbers, anything else as text. A run without
  // the value fails the condition.
  std::vector<std::string> where;
  std::string sort_by = "created_at";  // a PATH as above, or created_at/name/status/id
  bool descending = false;
  size_t limit = 0;  // 0: no limit
};

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

  std::vector<RunRecord> runs(const RunFilter& filter = {});
  // Throws NotFound naming the run if there is none with this id.
  RunRecord run(int64_t id);
  std::vector<std::string> metric_keys(int64_t run_id);
  // Steps in [x0, x1] of one series in at most about `buckets` buckets, from the finest
  // downsampling tier that needs no more than ~16 rows per bucket (raw points for short
  // ranges). Never reads a whole long series.
  std::vector<Bucket> series(int64_t run_id, const std::string& key, int64_t x0, int64_t x1, int buckets);
  // The steps of one series logged between wall times w0 and w1 (unix seconds), for charts
  // with time on the x-axis: pass them to series(). Found by descending the tiers (a few
  // dozen indexed rows), assuming wall time grows with step within a run (it does for a run
  // logged by one process, resumed or not). Empty if no point lies in [w0, w1].
  std::optional<std::pair<int64_t, int64_t>> steps_between(int64_t run_id, const std::string& key, double w0, double w1);
  // Raw points (step, value, wall) of one series in [x0, x1].
  std::vector<Bucket> points(int64_t run_id, const std::string& key, int64_t x0, int64_t x1);
  // Tables: the steps at which `name` was logged, and one of them ({"columns", "rows"}).
  std::vector<int64_t> table_steps(int64_t run_id, const std::string& name);
  nlohmann::json table(int64_t run_id, const std::string& name, int64_t step);
  // Console lines in order: [{"seq", "wall", "stream", "line"}].
  nlohmann::json console(int64_t run_id, int64_t after_seq = -1, int64_t limit = 1000);
  // The run's history as CSV: one row per step, one column per key (sorted), NaN and ±inf
  // written as nan/inf/-inf, missing values empty. System metrics (system/* keys) are sampled
  // on their own axis (sample number, every 10 s) rather than at training steps, so they are
  // left out; with `system`, only they are written, one row per sample (column "sample").
  void export_history_csv(int64_t run_id, std::ostream& out, bool system = false);

  // Artifact versions (tracker/events/artifact.h). `ref` is "NAME", "NAME:ALIAS" or "NAME:vN"
  // (NAME alone: its latest). Throws NotFound if nothing matches.
  ArtifactVersion artifact(const std::string& ref);
  // Every version of artifact `name` (of every artifact if empty), by name, then version.
  std::vector<ArtifactVersion> artifacts(const std::string& name = "");
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
