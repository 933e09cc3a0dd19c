#include "coordinator/jobs/job_store.h"

#include <cmath>

#include "tracker/query/artifacts.h"
#include "tracker/relay/relay.h"

#include "common/util/json.h"
#include "tracker/db/schema.h"

namespace jobs {
namespace {

using tracker::Stmt;

void bind_opt(Stmt& s, int i, const std::optional<int>& v) {
  if (v) s.bind(i, static_cast<int64_t>(*v));
  else s.bind_null(i);
}
void bind_opt(Stmt& s, int i, const std::optional<double>& v) {
  if (v) s.bind(i, *v);
  else s.bind_null(i);
}
std::optional<int> opt_int(Stmt& s, int col) {
  if (s.is_null(col)) return std::nullopt;
  return static_cast<int>(s.int64(col));
}
std::optional<double> opt_real(Stmt& s, int col) {
  if (s.is_null(col)) return std::nullopt;
  return s.real(col);
}

constexpr const char* kJobColumns =
    "id, spec, status, attempt, restarts, not_before, cancel_requested, run_uid, exit_code, signal, error, "
    "submitted_at, started_at, finished_at, stop_as";

JobRow read_job(Stmt& s, const std::string& db_path) {
  JobRow j;
  j.id = s.int64(0);
  // The spec was checked when it was submitted; a row that no longer parses is damage.
  j.spec = parse_job_spec(util::parse_json(s.text(1), db_path + ": job " + std::to_string(j.id) + " spec"),
                          db_path + ": job " + std::to_string(j.id));
  j.status = s.text(2);
  j.attempt = static_cast<int>(s.int64(3));
  j.restarts = static_cast<int>(s.int64(4));
  j.not_before = s.real(5);
  j.cancel_requested = s.int64(6) != 0;
  j.run_uid = s.text(7);
  j.exit_code = opt_int(s, 8);
  j.signal = opt_int(s, 9);
  j.error = s.text(10);
  j.submitted_at = s.real(11);
  j.started_at = opt_real(s, 12);
  j.finished_at = opt_real(s, 13);
  j.stop_as = s.text(14);
  return j;
}

constexpr const char* kLeaseColumns =
    "job_id, attempt, rank, worker, gpus, state, exit_code, signal, assigned_at, started_at, ended_at";

LeaseRow read_lease(Stmt& s) {
  LeaseRow l;
  l.job_id = s.int64(0);
  l.attempt = static_cast<int>(s.int64(1));
  l.rank = static_cast<int>(s.int64(2));
  l.worker = s.text(3);
  const nlohmann::json gpus = util::try_parse_json(s.text(4)).value_or(nlohmann::json::array());
  if (gpus.is_array())
    for (const auto& g : gpus)
      if (g.is_number_integer()) l.gpus.push_back(g.get<int>());
  l.state = s.text(5);
  l.exit_code = opt_int(s, 6);
  l.signal = opt_int(s, 7);
  l.assigned_at = s.real(8);
  l.started_at = opt_real(s, 9);
  l.ended_at = opt_real(s, 10);
  return l;
}

}  // namespace

JobStore::JobStore(const std::string& path)
    : db_(tracker::open_database(path, tracker::OpenMode::kReadWrite)), content_(path) {
  // A commit is on disk before the coordinator tells anyone about it.
  db_->exec("PRAGMA synchronous=FULL");
}

JobStore::~JobStore() {
  if (in_transaction_) {
    try {
      db_->exec("ROLLBACK");
    } catch (...) {
    }
  }
  stmts_.clear();
}

Stmt& JobStore::stmt(int index, const char* sql) {
  if (stmts_.size() <= static_cast<size_t>(index)) stmts_.resize(index + 1);
  if (!stmts_[index]) stmts_[index] = std::make_unique<Stmt>(*db_, sql);
  return *stmts_[index];
}

void JobStore::begin() {
  if (in_transaction_) return;
  db_->exec("BEGIN IMMEDIATE");
  in_transaction_ = true;
}

void JobStore::commit() {
  if (!in_transaction_) return;
  in_transaction_ = false;  // a failed COMMIT leaves SQLite's transaction to the destructor's rollback
  try {
    if (applier_) applier_->finish_batch();
    db_->exec("COMMIT");
  } catch (...) {
    in_transaction_ = true;
    if (applier_) applier_->rolled_back();
    applier_.reset();
    throw;
  }
  if (applier_) applier_->committed();
  applier_.reset();
}

tracker::Applied JobStore::apply_event(const tracker::Event& event, const std::vector<std::string>& gone) {
  begin();
  if (!applier_) applier_ = std::make_unique<tracker::Applier>(*db_, content_);
  applier_->accept_missing(gone);
  return applier_->apply_isolated(event);
}

nlohmann::json JobStore::run_seed(const std::string& run_uid) {
  if (applier_) applier_->finish_batch();  // the summaries and the event sequence as of this group
  return tracker::export_run_seed(*db_, run_uid);
}

bool JobStore::artifact_used(const std::string& ref) {
  int64_t version_id;
  try {
    version_id = tracker::resolve_artifact(*db_, ref);
  } catch (const tracker::NotFound&) {
    return false;
  }
  Stmt& s = stmt(9, "SELECT 1 FROM artifact_usage WHERE version_id = ? LIMIT 1");
  s.bind(1, version_id);
  const bool used = s.step();
  s.reset();
  return used;
}

std::string JobStore::run_status(const std::string& run_uid) {
  Stmt& s = stmt(8, "SELECT status FROM runs WHERE uid = ?");
  s.bind(1, run_uid);
  const std::string status = s.step() ? s.text(0) : "";
  s.reset();
  return status;
}

int64_t JobStore::run_id(const std::string& run_uid) {
  Stmt& s = stmt(13, "SELECT id FROM runs WHERE uid = ?");
  s.bind(1, run_uid);
  const int64_t id = s.step() ? s.int64(0) : 0;
  s.reset();
  return id;
}

int64_t JobStore::insert_job(const JobSpec& spec, double now) {
  begin();
  Stmt& s = stmt(0, "INSERT INTO jobs(spec, status, priority, submitted_at) VALUES(?, 'queued', ?, ?)");
  s.bind(1, to_json(spec).dump()).bind(2, static_cast<int64_t>(spec.priority)).bind(3, now);
  s.run();
  return sqlite3_last_insert_rowid(db_->handle());
}

void JobStore::save_job(const JobRow& j) {
  begin();
  Stmt& s = stmt(1,
                 "UPDATE jobs SET status=?, attempt=?, restarts=?, not_before=?, cancel_requested=?, run_uid=?, "
                 "exit_code=?, signal=?, error=?, started_at=?, finished_at=?, stop_as=? WHERE id=?");
  s.bind(1, j.status).bind(2, static_cast<int64_t>(j.attempt)).bind(3, static_cast<int64_t>(j.restarts));
  s.bind(4, j.not_before).bind(5, static_cast<int64_t>(j.cancel_requested)).bind(6, j.run_uid);
  bind_opt(s, 7, j.exit_code);
  bind_opt(s, 8, j.signal);
  s.bind(9, j.error);
  bind_opt(s, 10, j.started_at);
  bind_opt(s, 11, j.finished_at);
  s.bind(12, j.stop_as);
  s.bind(13, j.id);
  s.run();
}

void JobStore::save_lease(const LeaseRow& l) {
  begin();
  Stmt& s = stmt(2,
                 "INSERT OR REPLACE INTO job_leases(job_id, attempt, rank, worker, gpus, state, exit_code, signal, "
                 "assigned_at, started_at, ended_at) VALUES(?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, l.job_id).bind(2, static_cast<int64_t>(l.attempt)).bind(3, static_cast<int64_t>(l.rank));
  s.bind(4, l.worker).bind(5, nlohmann::json(l.gpus).dump()).bind(6, l.state);
  bind_opt(s, 7, l.exit_code);
  bind_opt(s, 8, l.signal);
  s.bind(9, l.assigned_at);
  bind_opt(s, 10, l.started_at);
  bind_opt(s, 11, l.ended_at);
  s.run();
}

void JobStore::save_worker(const WorkerRow& w) {
  begin();
  Stmt& s = stmt(3,
                 "INSERT INTO workers(id, hostname, resources, status, first_seen, last_seen) VALUES(?,?,?,?,?,?) "
                 "ON CONFLICT(id) DO UPDATE SET hostname=excluded.hostname, resources=excluded.resources, "
                 "status=excluded.status, last_seen=excluded.last_seen");
  s.bind(1, w.id).bind(2, w.hostname).bind(3, w.resources.dump()).bind(4, w.status).bind(5, w.first_seen).bind(6, w.last_seen);
  s.run();
}

void JobStore::append_log(int64_t job_id, int attempt, int rank, const std::vector<LogLine>& lines) {
  if (lines.empty()) return;
  begin();
  Stmt& s = stmt(4, "INSERT OR IGNORE INTO job_logs(job_id, attempt, rank, line, stream, wall, text) VALUES(?,?,?,?,?,?,?)");
  for (const LogLine& l : lines) {
    s.bind(1, job_id).bind(2, static_cast<int64_t>(attempt)).bind(3, static_cast<int64_t>(rank)).bind(4, l.line);
    s.bind(5, l.stream).bind(6, l.wall).bind(7, l.text);
    s.run();
  }
}

std::vector<JobRow> JobStore::unfinished_jobs() {
  Stmt s(*db_, (std::string("SELECT ") + kJobColumns +
                " FROM jobs WHERE status IN ('queued','assigned','running') ORDER BY id").c_str());
  std::vector<JobRow> out;
  while (s.step()) out.push_back(read_job(s, db_->path()));
  return out;
}

std::vector<LeaseRow> JobStore::open_leases() {
  Stmt s(*db_, (std::string("SELECT ") + kLeaseColumns + " FROM job_leases WHERE state IN ('assigned','running')").c_str());
  std::vector<LeaseRow> out;
  while (s.step()) out.push_back(read_lease(s));
  return out;
}

std::vector<WorkerRow> JobStore::workers() {
  Stmt s(*db_, "SELECT id, hostname, resources, status, first_seen, last_seen FROM workers ORDER BY id");
  std::vector<WorkerRow> out;
  while (s.step()) {
    WorkerRow w;
    w.id = s.text(0);
    w.hostname = s.text(1);
    w.resources = util::try_parse_json(s.text(2)).value_or(nlohmann::json::object());
    w.status = s.text(3);
    w.first_seen = s.real(4);
    w.last_seen = s.real(5);
    out.push_back(std::move(w));
  }
  return out;
}

std::optional<JobRow> JobStore::job(int64_t id) {
  static const std::string sql = std::string("SELECT ") + kJobColumns + " FROM jobs WHERE id=?";
  Stmt& s = stmt(5, sql.c_str());
  s.bind(1, id);
  std::optional<JobRow> row;
  try {
    if (s.step()) row = read_job(s, db_->path());
  } catch (...) {
    s.reset();
    throw;
  }
  s.reset();
  return row;
}

std::optional<int> JobStore::newest_attempt(int64_t id) {
  Stmt& s = stmt(6, "SELECT attempt FROM jobs WHERE id=?");
  s.bind(1, id);
  std::optional<int> attempt;
  if (s.step()) attempt = static_cast<int>(s.int64(0));
  s.reset();
  return attempt;
}

std::vector<JobRow> JobStore::list_jobs(int64_t limit, const std::string& status) {
  Stmt s(*db_, (std::string("SELECT ") + kJobColumns + " FROM jobs WHERE (?1 = '' OR status = ?1) ORDER BY id DESC LIMIT ?2").c_str());
  s.bind(1, status).bind(2, limit);
  std::vector<JobRow> out;
  while (s.step()) out.push_back(read_job(s, db_->path()));
  return out;
}

std::vector<std::pair<std::string, int64_t>> JobStore::final_counts() {
  Stmt s(*db_, "SELECT status, count(*) FROM jobs WHERE status NOT IN ('queued','assigned','running') GROUP BY status");
  std::vector<std::pair<std::string, int64_t>> out;
  while (s.step()) out.emplace_back(s.text(0), s.int64(1));
  return out;
}

std::vector<LeaseRow> JobStore::leases_of(int64_t job_id, int attempt) {
  static const std::string sql = std::string("SELECT ") + kLeaseColumns + " FROM job_leases WHERE job_id=? AND attempt=? ORDER BY rank";
  Stmt& s = stmt(7, sql.c_str());
  s.bind(1, job_id).bind(2, static_cast<int64_t>(attempt));
  std::vector<LeaseRow> out;
  while (s.step()) out.push_back(read_lease(s));
  s.reset();
  return out;
}

std::vector<LogLine> JobStore::log_lines(int64_t job_id, int attempt, int rank, int64_t after, int64_t limit) {
  Stmt s(*db_, "SELECT line, stream, wall, text FROM job_logs WHERE job_id=? AND attempt=? AND rank=? AND line>? ORDER BY line LIMIT ?");
  s.bind(1, job_id).bind(2, static_cast<int64_t>(attempt)).bind(3, static_cast<int64_t>(rank)).bind(4, after).bind(5, limit);
  std::vector<LogLine> out;
  while (s.step()) out.push_back({s.int64(0), s.text(1), s.real(2), s.text(3)});
  return out;
}

// --- sweeps ------------------------------------------------------------------------------------

namespace {

constexpr const char* kSweepColumns = "id, spec, status, note, created_at, finished_at";

SweepRow read_sweep(Stmt& s, const std::string& db_path) {
  SweepRow w;
  w.id = s.int64(0);
  w.spec = util::parse_json(s.text(1), db_path + ": sweep " + std::to_string(w.id) + " spec");
  w.status = s.text(2);
  w.note = s.text(3);
  w.created_at = s.real(4);
  w.finished_at = opt_real(s, 5);
  return w;
}

}  // namespace

int64_t JobStore::insert_sweep(const nlohmann::json& spec, double now) {
  begin();
  Stmt& s = stmt(10, "INSERT INTO sweeps(spec, status, created_at) VALUES(?, 'running', ?)");
  s.bind(1, spec.dump()).bind(2, now);
  s.run();
  return sqlite3_last_insert_rowid(db_->handle());
}

void JobStore::save_sweep(const SweepRow& w) {
  begin();
  Stmt& s = stmt(11, "UPDATE sweeps SET status=?, note=?, finished_at=? WHERE id=?");
  s.bind(1, w.status).bind(2, w.note);
  bind_opt(s, 3, w.finished_at);
  s.bind(4, w.id);
  s.run();
}

void JobStore::save_trial(const TrialRow& t) {
  begin();
  Stmt& s = stmt(12,
                 "INSERT OR REPLACE INTO sweep_trials(sweep_id, trial, point, params, job_id, status, value, best, step, rungs, "
                 "replaced_by, created_at, ended_at) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?)");
  s.bind(1, t.sweep_id).bind(2, t.trial).bind(3, t.point).bind(4, t.params.dump()).bind(5, t.job_id).bind(6, t.status);
  bind_opt(s, 7, t.value);
  bind_opt(s, 8, t.best);
  if (t.step) s.bind(9, *t.step);
  else s.bind_null(9);
  s.bind(10, nlohmann::json(t.rungs).dump());
  if (t.replaced_by) s.bind(11, *t.replaced_by);
  else s.bind_null(11);
  s.bind(12, t.created_at);
  bind_opt(s, 13, t.ended_at);
  s.run();
}

std::vector<SweepRow> JobStore::sweeps(int64_t limit, const std::string& status) {
  Stmt s(*db_, (std::string("SELECT ") + kSweepColumns + " FROM sweeps WHERE (?1 = '' OR status = ?1) ORDER BY id DESC LIMIT ?2").c_str());
  s.bind(1, status).bind(2, limit);
  std::vector<SweepRow> out;
  while (s.step()) out.push_back(read_sweep(s, db_->path()));
  return out;
}

std::optional<SweepRow> JobStore::sweep(int64_t id) {
  Stmt s(*db_, (std::string("SELECT ") + kSweepColumns + " FROM sweeps WHERE id = ?").c_str());
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return read_sweep(s, db_->path());
}

std::vector<SweepRow> JobStore::sweeps_in_progress() {
  Stmt s(*db_, (std::string("SELECT ") + kSweepColumns +
                " FROM sweeps WHERE status = 'running' OR id IN (SELECT sweep_id FROM sweep_trials WHERE status = '') ORDER BY id").c_str());
  std::vector<SweepRow> out;
  while (s.step()) out.push_back(read_sweep(s, db_->path()));
  return out;
}

std::vector<TrialRow> JobStore::trials_of(int64_t sweep_id) {
  Stmt s(*db_,
         "SELECT sweep_id, trial, point, params, job_id, status, value, best, step, rungs, replaced_by, created_at, ended_at "
         "FROM sweep_trials WHERE sweep_id = ? ORDER BY trial");
  s.bind(1, sweep_id);
  std::vector<TrialRow> out;
  while (s.step()) {
    TrialRow t;
    t.sweep_id = s.int64(0);
    t.trial = s.int64(1);
    t.point = s.int64(2);
    t.params = util::try_parse_json(s.text(3)).value_or(nlohmann::json::object());
    t.job_id = s.int64(4);
    t.status = s.text(5);
    t.value = opt_real(s, 6);
    t.best = opt_real(s, 7);
    if (!s.is_null(8)) t.step = s.int64(8);
    const nlohmann::json rungs = util::try_parse_json(s.text(9)).value_or(nlohmann::json::array());
    if (rungs.is_array())
      for (const nlohmann::json& r : rungs) t.rungs.push_back(r.is_number() ? r.get<double>() : NAN);
    if (!s.is_null(10)) t.replaced_by = s.int64(10);
    t.created_at = s.real(11);
    t.ended_at = opt_real(s, 12);
    out.push_back(std::move(t));
  }
  return out;
}

}  // namespace jobs
