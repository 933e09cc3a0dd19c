// The coordinator's durable state: jobs, leases, workers and job console lines in the tracker
// database file (schema migration 4), behind a narrow write API of plain rows.
//
// Group commit. The coordinator handles every message that has arrived, then commits once and
// only then sends what those changes promise (ASSIGN, EXITED_ACK, a submit's job ids). So a
// batch of 500 state changes costs one fsync, and nothing a peer was told is ever lost:
//   store.save_job(...)   // opens a write transaction when none is open
//   store.save_lease(...)
//   store.commit();       // durable (synchronous=FULL: also across a power cut)
// A failed commit throws DbError; the coordinator stops rather than carry on with state the
// disk does not hold.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/jobs/job_spec.h"
#include "tracker/db/content.h"
#include "tracker/db/sqlite.h"
#include "tracker/store/apply.h"

namespace jobs {

struct JobRow {
  int64_t id = 0;
  JobSpec spec;
  std::string status = "queued";  // queued assigned running succeeded failed cancelled early-stopped
  int attempt = 0;                // the newest attempt (0: none yet)
  int restarts = 0;               // attempts that started and did not succeed
  double not_before = 0;          // unix seconds: retry backoff
  bool cancel_requested = false;
  std::string stop_as;  // the final status a requested stop gives: "" (cancelled) or early-stopped
  std::string run_uid;
  std::optional<int> exit_code, signal;
  std::string error;
  double submitted_at = 0;
  std::optional<double> started_at, finished_at;
};

// One rank of one attempt placed on a worker. Open (holding the worker's resources) while
// "assigned" or "running"; then "exited" or "lost".
struct LeaseRow {
  int64_t job_id = 0;
  int attempt = 0, rank = 0;
  std::string worker;
  std::vector<int> gpus;
  std::string state = "assigned";
  std::optional<int> exit_code, signal;
  double assigned_at = 0;
  std::optional<double> started_at, ended_at;
  bool open() const { return state == "assigned" || state == "running"; }
};

struct WorkerRow {
  std::string id, hostname;
  nlohmann::json resources = nlohmann::json::object();
  std::string status = "alive";  // alive lost left
  double first_seen = 0, last_seen = 0;
};

// A sweep (coordinator/sweep/sweeps.h) and its trials.
struct SweepRow {
  int64_t id = 0;
  nlohmann::json spec;             // sweep::to_json of the definition
  std::string status = "running";  // running finished cancelled failed
  std::string note;
  double created_at = 0;
  std::optional<double> finished_at;
};

struct TrialRow {
  int64_t sweep_id = 0, trial = 0;
  int64_t point = 0;  // grid: the point's index; else the draw's number
  nlohmann::json params = nlohmann::json::object();
  int64_t job_id = 0;
  std::string status;  // "" while the job is unfinished, then its final status
  std::optional<double> value, best;
  std::optional<int64_t> step;
  std::vector<double> rungs;  // ASHA: the value recorded at rung 0, 1, …
  std::optional<int64_t> replaced_by;
  double created_at = 0;
  std::optional<double> ended_at;
};

struct LogLine {
  int64_t line = 0;
  std::string stream;  // stdout | stderr
  double wall = 0;
  std::string text;
};

class JobStore {
 public:
  // Opens (creating or upgrading) the database at `path`. Throws tracker::DbError.
  explicit JobStore(const std::string& path);
  ~JobStore();

  // Writes; each opens the group's transaction if none is open.
  int64_t insert_job(const JobSpec& spec, double now);  // status queued; returns the id
  void save_job(const JobRow& job);
  void save_lease(const LeaseRow& lease);
  void save_worker(const WorkerRow& worker);
  // Stores lines first, first+1, … of one rank's console in an attempt (lines already stored
  // are kept).
  void append_log(int64_t job_id, int attempt, int rank, const std::vector<LogLine>& lines);
  // Applies one tracker event relayed from a job (tracker/store/apply.h) in the group, in a
  // savepoint of its own: returns what it made, or throws what Applier::apply throws having
  // changed nothing. `gone`: files its artifact_logged may name without this store holding
  // them (the job deleted them since). Durable with the group's commit.
  tracker::Applied apply_event(const tracker::Event& event, const std::vector<std::string>& gone = {});
  // The content store artifact files are received into.
  const tracker::ContentStore& content() const { return content_; }
  // Run `run_uid` as a seed for a job resuming it elsewhere (tracker/relay/relay.h), as of this
  // group. Throws tracker::NotFound.
  nlohmann::json run_seed(const std::string& run_uid);
  // Whether some run used the artifact version `ref` names (lineage); false if there is none.
  bool artifact_used(const std::string& ref);
  // The run's status ("" for an unknown run).
  std::string run_status(const std::string& run_uid);
  // The run's id in this database (0 for an unknown run).
  int64_t run_id(const std::string& run_uid);
  int64_t insert_sweep(const nlohmann::json& spec, double now);  // status running; returns the id
  void save_sweep(const SweepRow& sweep);
  void save_trial(const TrialRow& trial);  // inserts or replaces
  std::vector<SweepRow> sweeps(int64_t limit, const std::string& status = "");  // newest first
  std::optional<SweepRow> sweep(int64_t id);
  // Sweeps still running, or with a trial still unfinished: what a restarted coordinator tracks.
  std::vector<SweepRow> sweeps_in_progress();
  std::vector<TrialRow> trials_of(int64_t sweep_id);  // in trial order
  // Commits the open group, if any.
  void commit();
  bool pending() const { return in_transaction_; }

  // Reads (committed state plus the open group's own writes).
  std::vector<JobRow> unfinished_jobs();
  std::vector<LeaseRow> open_leases();
  std::vector<WorkerRow> workers();
  std::optional<JobRow> job(int64_t id);
  // Job `id`'s newest attempt number, without reading its spec.
  std::optional<int> newest_attempt(int64_t id);
  // Jobs newest first: at most `limit`, optionally only those with `status`.
  std::vector<JobRow> list_jobs(int64_t limit, const std::string& status = "");
  // How many jobs are in each final status.
  std::vector<std::pair<std::string, int64_t>> final_counts();
  std::vector<LeaseRow> leases_of(int64_t job_id, int attempt);
  // Console lines of one rank of an attempt after line `after` (at most `limit`).
  std::vector<LogLine> log_lines(int64_t job_id, int attempt, int rank, int64_t after, int64_t limit);

 private:
  void begin();
  tracker::Stmt& stmt(int index, const char* sql);

  std::unique_ptr<tracker::Db> db_;
  tracker::ContentStore content_;
  std::unique_ptr<tracker::Applier> applier_;  // this group's, once it applies an event
  std::vector<std::unique_ptr<tracker::Stmt>> stmts_;
  bool in_transaction_ = false;
};

}  // namespace jobs
