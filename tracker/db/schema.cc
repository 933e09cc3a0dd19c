#include "tracker/db/schema.h"

#include <sys/stat.h>

#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

namespace tracker {
namespace {

// Migration N (1-based) is kMigrations[N-1]. Append only: never edit a released migration.
const std::vector<const char*> kMigrations = {
    // 1: runs, metrics with summaries and downsampling tiers, tables, histograms, console.
    R"SQL(
CREATE TABLE projects(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE runs(
  id INTEGER PRIMARY KEY,
  uid TEXT NOT NULL UNIQUE,                -- stable across databases (sync)
  project_id INTEGER NOT NULL REFERENCES projects(id),
  name TEXT NOT NULL,
  group_name TEXT NOT NULL DEFAULT '',
  tags TEXT NOT NULL DEFAULT '[]',         -- JSON array
  notes TEXT NOT NULL DEFAULT '',
  config TEXT NOT NULL DEFAULT '{}',       -- JSON object
  status TEXT NOT NULL,                    -- running | finished | failed | stopped | crashed | ...
  created_at REAL NOT NULL,                -- unix seconds
  heartbeat_at REAL NOT NULL,
  finished_at REAL
);
CREATE INDEX runs_by_project ON runs(project_id, created_at);
CREATE TABLE metric_keys(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
-- One row per point, clustered by (run, key, step). value NULL = NaN.
CREATE TABLE metrics(
  run_id INTEGER NOT NULL, key_id INTEGER NOT NULL, step INTEGER NOT NULL,
  value REAL, wall REAL NOT NULL,
  PRIMARY KEY(run_id, key_id, step)) WITHOUT ROWID;
-- Downsampling tiers kept at ingest: bucket = step / width for widths 16, 256, 4096, 65536.
-- min/max ignore NaN (NULL when a bucket holds only NaN); last is the value at last_step.
CREATE TABLE metric_tiers(
  run_id INTEGER NOT NULL, key_id INTEGER NOT NULL, width INTEGER NOT NULL, bucket INTEGER NOT NULL,
  min REAL, max REAL, last REAL, last_step INTEGER NOT NULL, last_wall REAL NOT NULL, count INTEGER NOT NULL,
  PRIMARY KEY(run_id, key_id, width, bucket)) WITHOUT ROWID;
-- Per run and key: kept current at ingest so listing runs never scans metrics.
CREATE TABLE summaries(
  run_id INTEGER NOT NULL, key_id INTEGER NOT NULL,
  last REAL, last_step INTEGER NOT NULL, min REAL, max REAL, count INTEGER NOT NULL,
  goal TEXT NOT NULL DEFAULT '',           -- '', 'min' or 'max': which of min/max is "best"
  PRIMARY KEY(run_id, key_id)) WITHOUT ROWID;
CREATE TABLE run_tables(
  run_id INTEGER NOT NULL, name TEXT NOT NULL, step INTEGER NOT NULL,
  columns TEXT NOT NULL, rows TEXT NOT NULL,   -- JSON arrays
  PRIMARY KEY(run_id, name, step)) WITHOUT ROWID;
CREATE TABLE histograms(
  run_id INTEGER NOT NULL, key_id INTEGER NOT NULL, step INTEGER NOT NULL,
  lo REAL NOT NULL, hi REAL NOT NULL, counts TEXT NOT NULL,  -- equal-width bins over [lo, hi]
  PRIMARY KEY(run_id, key_id, step)) WITHOUT ROWID;
CREATE TABLE console(
  run_id INTEGER NOT NULL, seq INTEGER NOT NULL, wall REAL NOT NULL, stream TEXT NOT NULL, line TEXT NOT NULL,
  PRIMARY KEY(run_id, seq)) WITHOUT ROWID;
)SQL",
    // 2: artifacts (content-addressed files, versions, aliases, lineage).
    R"SQL(
CREATE TABLE artifacts(id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, type TEXT NOT NULL);
CREATE TABLE artifact_versions(
  id INTEGER PRIMARY KEY, artifact_id INTEGER NOT NULL REFERENCES artifacts(id), version INTEGER NOT NULL,
  digest TEXT NOT NULL, size INTEGER NOT NULL, metadata TEXT NOT NULL DEFAULT '{}',
  run_uid TEXT, created_at REAL NOT NULL,
  UNIQUE(artifact_id, version), UNIQUE(artifact_id, digest));
CREATE TABLE artifact_files(
  version_id INTEGER NOT NULL, path TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
  PRIMARY KEY(version_id, path)) WITHOUT ROWID;
CREATE TABLE artifact_aliases(
  artifact_id INTEGER NOT NULL, alias TEXT NOT NULL, version_id INTEGER NOT NULL,
  PRIMARY KEY(artifact_id, alias)) WITHOUT ROWID;
CREATE TABLE artifact_usage(
  run_uid TEXT NOT NULL, version_id INTEGER NOT NULL, PRIMARY KEY(run_uid, version_id)) WITHOUT ROWID;
)SQL",
    // 3: the highest event sequence number applied per run (tracker/events/events.h), so a
    // replayed stream of a run's events is applied once.
    R"SQL(
ALTER TABLE runs ADD COLUMN event_seq INTEGER NOT NULL DEFAULT 0;
)SQL",
    // 4: the coordinator's durable state (coordinator/jobs/job_store.h): jobs, their attempts,
    // the leases that place an attempt's ranks on workers, workers, and the jobs' console output.
    R"SQL(
CREATE TABLE jobs(
  id INTEGER PRIMARY KEY,
  spec TEXT NOT NULL,                      -- JSON: the job as submitted (coordinator/jobs/job_spec.h)
  status TEXT NOT NULL,                    -- queued assigned running succeeded failed cancelled early-stopped
  priority INTEGER NOT NULL,
  attempt INTEGER NOT NULL DEFAULT 0,      -- the newest attempt's number (0: none yet)
  restarts INTEGER NOT NULL DEFAULT 0,     -- attempts that started and did not succeed
  not_before REAL NOT NULL DEFAULT 0,      -- retry backoff: not placed before this unix time
  cancel_requested INTEGER NOT NULL DEFAULT 0,
  run_uid TEXT NOT NULL DEFAULT '',        -- a training or evaluation job's tracked run
  exit_code INTEGER, signal INTEGER,
  error TEXT NOT NULL DEFAULT '',
  submitted_at REAL NOT NULL, started_at REAL, finished_at REAL);
CREATE INDEX jobs_by_status ON jobs(status, priority, id);
CREATE TABLE job_leases(                  -- one rank of one attempt, placed on a worker
  job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, rank INTEGER NOT NULL,
  worker TEXT NOT NULL,
  gpus TEXT NOT NULL DEFAULT '[]',         -- JSON array of GPU indexes on the worker
  state TEXT NOT NULL,                     -- assigned running exited lost
  exit_code INTEGER, signal INTEGER,
  assigned_at REAL NOT NULL, started_at REAL, ended_at REAL,
  PRIMARY KEY(job_id, attempt, rank)) WITHOUT ROWID;
CREATE INDEX job_leases_open ON job_leases(state, job_id);
CREATE TABLE workers(
  id TEXT PRIMARY KEY,
  hostname TEXT NOT NULL,
  resources TEXT NOT NULL,                 -- JSON as the worker reported it
  status TEXT NOT NULL,                    -- alive lost left
  first_seen REAL NOT NULL, last_seen REAL NOT NULL);
CREATE TABLE job_logs(
  job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, line INTEGER NOT NULL,
  stream TEXT NOT NULL, wall REAL NOT NULL, text TEXT NOT NULL,
  PRIMARY KEY(job_id, attempt, line)) WITHOUT ROWID;
)SQL",
    // 5: console lines per rank: the ranks of a multi-rank attempt each number their own lines.
    R"SQL(
CREATE TABLE job_logs_by_rank(
  job_id INTEGER NOT NULL, attempt INTEGER NOT NULL, rank INTEGER NOT NULL, line INTEGER NOT NULL,
  stream TEXT NOT NULL, wall REAL NOT NULL, text TEXT NOT NULL,
  PRIMARY KEY(job_id, attempt, rank, line)) WITHOUT ROWID;
INSERT INTO job_logs_by_rank SELECT job_id, attempt, 0, line, stream, wall, text FROM job_logs;
DROP TABLE job_logs;
ALTER TABLE job_logs_by_rank RENAME TO job_logs;
)SQL",
    // 6: the relay log (tracker/relay/relay.h): in a job's database on a worker, every event
    // applied, in order, for the worker to forward to its coordinator. Written only where the
    // settings row relay = 1 says so.
    R"SQL(
CREATE TABLE settings(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE relay_log(id INTEGER PRIMARY KEY, event TEXT NOT NULL);  -- JSON form (events.h)
)SQL",
    // 7: sweeps (coordinator/sweep/sweeps.h): each sweep's definition and its trials, each trial
    // a job; and the status a requested stop gives a job (ASHA's early stop is not a cancel).
    R"SQL(
ALTER TABLE jobs ADD COLUMN stop_as TEXT NOT NULL DEFAULT '';  -- '' (cancelled) or early-stopped
CREATE TABLE sweeps(
  id INTEGER PRIMARY KEY,
  spec TEXT NOT NULL,                      -- JSON: the definition as checked (sweep_spec.h to_json)
  status TEXT NOT NULL,                    -- running finished cancelled failed
  note TEXT NOT NULL DEFAULT '',           -- why it ended, or what it waits for
  created_at REAL NOT NULL, finished_at REAL);
CREATE TABLE sweep_trials(
  sweep_id INTEGER NOT NULL, trial INTEGER NOT NULL,  -- trial: 0, 1, … in the order they were made
  point INTEGER NOT NULL,                  -- grid: the point's index; else the draw's number
  params TEXT NOT NULL,                    -- JSON {path: value}
  job_id INTEGER NOT NULL,
  status TEXT NOT NULL DEFAULT '',         -- '' while its job is unfinished, then the job's final status
  value REAL, best REAL, step INTEGER,     -- the metric's latest value, its best, the latest's step
  rungs TEXT NOT NULL DEFAULT '[]',        -- JSON: the value recorded at each ASHA rung reached
  replaced_by INTEGER,                     -- the trial that re-ran this one (sweep rerun)
  created_at REAL NOT NULL, ended_at REAL,
  PRIMARY KEY(sweep_id, trial)) WITHOUT ROWID;
CREATE INDEX sweep_trials_by_job ON sweep_trials(job_id);
)SQL",
};

// Switches a new file to WAL (the mode is stored in the file, so once is enough). The switch
// needs an exclusive lock and SQLite may answer SQLITE_BUSY without consulting the busy
// handler when another process is opening the same new file: retry for up to 30 s.
void set_wal_mode(Db& db) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (true) {
    try {
      Stmt mode(db, "PRAGMA journal_mode=WAL");
      if (mode.step() && mode.text(0) == "wal") return;
    } catch (const DbError&) {
      const int code = sqlite3_errcode(db.handle()) & 0xff;
      if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || std::chrono::steady_clock::now() > deadline) throw;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

struct Header {
  int64_t app_id = 0, version = 0, tables = 0;
};

// One statement reads one snapshot, so a concurrent creator's commit cannot fall between the
// values.
Header read_header(Db& db, const std::string& path) {
  Header h;
  try {
    Stmt look(db, "SELECT (SELECT application_id FROM pragma_application_id()), "
                  "(SELECT user_version FROM pragma_user_version()), (SELECT count(*) FROM sqlite_master)");
    if (look.step()) h.app_id = look.int64(0), h.version = look.int64(1), h.tables = look.int64(2);
  } catch (const DbError& e) {
    throw DbError(path + ": not an i3lab database (" + std::string(e.what()).substr(path.size() + 2) +
                  "); it was left untouched");
  }
  return h;
}

// Refuses, before anything is written, whatever the migrations cannot start from: a file of
// another program, of a newer or unknown schema version (user_version is any 32-bit value, and
// it indexes kMigrations), or one without tables where a read needs them. An empty file (no
// tables, no marks) is a new database to a writer.
void check_header(const std::string& path, OpenMode mode, const Header& h) {
  const std::string known = std::to_string(schema_version());
  if (h.app_id != kApplicationId && !(h.app_id == 0 && h.tables == 0))
    throw DbError(path + ": a SQLite database of another program (application_id " + std::to_string(h.app_id) +
                  "), not an i3lab database; it was left untouched");
  if (h.version > schema_version())
    throw DbError(path + ": written by a newer i3lab (schema " + std::to_string(h.version) + ", this build knows " +
                  known + "); upgrade i3lab. The file was left untouched");
  if (h.version < 0 || (h.version == 0 && h.tables > 0))
    throw DbError(path + ": not an i3lab database of a known version (user_version " + std::to_string(h.version) +
                  ", this build knows 1.." + known + "); it was left untouched");
  if (h.tables == 0 && (h.version != 0 || mode == OpenMode::kReadOnly))
    throw DbError(path + ": not an i3lab database (no tables); give the database a run wrote, or let a run create "
                  "this one first. It was left untouched");
}

}  // namespace

int schema_version() { return static_cast<int>(kMigrations.size()); }

std::unique_ptr<Db> open_database(const std::string& path, OpenMode mode, int max_version) {
  if (max_version > schema_version())
    throw std::invalid_argument("max_version " + std::to_string(max_version) + " is past this build's schema " +
                                std::to_string(schema_version()));
  const int target = max_version < 0 ? schema_version() : max_version;
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  const int flags = mode == OpenMode::kReadOnly ? SQLITE_OPEN_READONLY
                                                : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  if (!exists && mode == OpenMode::kReadOnly) throw DbError(path + ": no such database file");
  // SQLite would wait forever on a FIFO and read a device as a database.
  if (exists && !S_ISREG(st.st_mode)) throw DbError(path + ": not a regular file, so not a database; it was left untouched");
  auto db = std::make_unique<Db>(path, flags | SQLITE_OPEN_NOMUTEX);

  // Look before writing anything: journal_mode=WAL alone rewrites the header.
  check_header(path, mode, read_header(*db, path));
  if (mode == OpenMode::kReadOnly) return db;

  set_wal_mode(*db);
  db->exec("PRAGMA synchronous=NORMAL");
  WriteTransaction tx(*db);  // concurrent openers migrate one after another
  // Again under the write lock: another opener may have created or upgraded the file since.
  const Header now = read_header(*db, path);
  check_header(path, mode, now);
  for (int64_t v = now.version; v < target; ++v) {
    db->exec(kMigrations[v]);
    db->exec("PRAGMA user_version=" + std::to_string(v + 1));
  }
  db->exec("PRAGMA application_id=" + std::to_string(kApplicationId));
  tx.commit();
  return db;
}

}  // namespace tracker
