#include "tracker/sync/sync.h"

#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <vector>

#include "common/util/json.h"
#include "tracker/db/content.h"
#include "tracker/db/schema.h"
#include "tracker/store/apply.h"

namespace fs = std::filesystem;

namespace tracker {
namespace {

int64_t changes(Db& db) { return sqlite3_changes(db.handle()); }

int64_t run_sql(Db& db, const char* sql) {
  Stmt s(db, sql);
  s.run();
  return changes(db);
}

// The newest migration that changed tables the merge reads (3: runs.event_seq). A source of that
// schema or later is attached as it is; only an older one is copied and upgraded first.
// (Migration 4 added the coordinator's tables, which sync does not read.)
constexpr int kNewestReadSchema = 3;

int64_t user_version(Db& db) {
  Stmt s(db, "PRAGMA user_version");
  return s.step() ? s.int64(0) : 0;
}

// A source of an older schema, copied (a consistent snapshot, WAL included) beside the target
// and upgraded there, so that the source itself is only ever read. Removed when done.
class UpgradedCopy {
 public:
  UpgradedCopy(Db& source, const std::string& target) {
    std::string name = target + ".sync-source-XXXXXX";
    const int fd = ::mkstemp(name.data());
    if (fd < 0) throw DbError(name + ": cannot create a temporary copy of " + source.path() + ": " + std::strerror(errno));
    ::close(fd);
    path_ = name;
    // A constructor that throws runs no destructor: remove the copy here on failure.
    try {
      // VACUUM INTO writes a new file (or an empty one) and keeps user_version and
      // application_id; a read-only connection may run it.
      Stmt vacuum(source, "VACUUM INTO ?");
      vacuum.bind(1, sqlite_uri(path_)).run();
      open_database(path_, OpenMode::kReadWrite);
    } catch (...) {
      remove();
      throw;
    }
  }
  ~UpgradedCopy() { remove(); }
  UpgradedCopy(const UpgradedCopy&) = delete;
  UpgradedCopy& operator=(const UpgradedCopy&) = delete;
  const std::string& path() const { return path_; }

 private:
  void remove() const {
    std::error_code ignored;
    for (const char* suffix : {"", "-wal", "-shm", "-journal"}) fs::remove(path_ + suffix, ignored);
  }
  std::string path_;
};

}  // namespace

SyncReport sync_databases(const std::string& from, const std::string& to) {
  if (!fs::exists(from)) throw DbError(from + ": no such database file");
  if (fs::exists(to) && fs::equivalent(from, to)) throw std::invalid_argument("--from and --to are the same database");
  // The source is only read, never created, upgraded or checkpointed: open_database refuses a
  // foreign, newer, corrupt or table-less one without writing; an older one is synced from an
  // upgraded copy.
  std::optional<UpgradedCopy> copy;  // outlives the connection that attaches it
  auto source = open_database(from, OpenMode::kReadOnly);
  auto db = open_database(to, OpenMode::kReadWrite);
  if (user_version(*source) < kNewestReadSchema) copy.emplace(*source, to);
  source.reset();
  {
    Stmt attach(*db, "ATTACH DATABASE ? AS src");
    attach.bind(1, sqlite_uri(copy ? copy->path() : from, "mode=ro")).run();
  }
  SyncReport report;
  WriteTransaction tx(*db);
  run_sql(*db, "INSERT OR IGNORE INTO main.projects(name) SELECT name FROM src.projects");
  report.runs_added = run_sql(*db, R"SQL(
    INSERT INTO main.runs(uid, project_id, name, group_name, tags, notes, config, status, created_at, heartbeat_at, finished_at,
                          event_seq)
    SELECT r.uid, (SELECT id FROM main.projects WHERE name = p.name), r.name, r.group_name, r.tags, r.notes, r.config,
           r.status, r.created_at, r.heartbeat_at, r.finished_at, r.event_seq
    FROM src.runs r JOIN src.projects p ON p.id = r.project_id
    WHERE r.uid NOT IN (SELECT uid FROM main.runs) ORDER BY r.id)SQL");
  report.runs_updated = run_sql(*db, R"SQL(
    UPDATE main.runs SET status = s.status, heartbeat_at = s.heartbeat_at, finished_at = s.finished_at,
                         event_seq = max(runs.event_seq, s.event_seq)
    FROM (SELECT uid, status, heartbeat_at, finished_at, event_seq FROM src.runs) AS s
    WHERE s.uid = runs.uid AND s.heartbeat_at > runs.heartbeat_at)SQL");
  run_sql(*db, "INSERT OR IGNORE INTO main.metric_keys(name) SELECT name FROM src.metric_keys");
  run_sql(*db, "CREATE TEMP TABLE run_map AS SELECT s.id AS src_id, m.id AS dst_id FROM src.runs s JOIN main.runs m ON m.uid = s.uid");
  run_sql(*db, "CREATE TEMP TABLE key_map AS SELECT s.id AS src_id, m.id AS dst_id FROM src.metric_keys s "
               "JOIN main.metric_keys m ON m.name = s.name");

  std::vector<std::pair<int64_t, int64_t>> runs;  // (src, dst)
  {
    Stmt s(*db, "SELECT src_id, dst_id FROM temp.run_map ORDER BY src_id");
    while (s.step()) runs.emplace_back(s.int64(0), s.int64(1));
  }
  Stmt points(*db, R"SQL(
    INSERT OR IGNORE INTO main.metrics(run_id, key_id, step, value, wall)
    SELECT ?2, k.dst_id, x.step, x.value, x.wall FROM src.metrics x JOIN temp.key_map k ON k.src_id = x.key_id
    WHERE x.run_id = ?1)SQL");
  Stmt goals(*db, R"SQL(
    INSERT INTO main.summaries(run_id, key_id, last, last_step, min, max, count, goal)
    SELECT ?2, k.dst_id, NULL, -1, NULL, NULL, 0, s.goal FROM src.summaries s JOIN temp.key_map k ON k.src_id = s.key_id
    WHERE s.run_id = ?1 AND s.goal != ''
    ON CONFLICT(run_id, key_id) DO UPDATE SET goal = excluded.goal WHERE goal = '')SQL");
  for (auto [src, dst] : runs) {
    points.bind(1, src).bind(2, dst).run();
    const int64_t added = changes(*db);
    goals.bind(1, src).bind(2, dst).run();
    if (added > 0) rebuild_aggregates(*db, dst);
    report.points_added += added;
  }
  report.rows_added += run_sql(*db, R"SQL(
    INSERT OR IGNORE INTO main.run_tables(run_id, name, step, columns, rows)
    SELECT m.dst_id, t.name, t.step, t.columns, t.rows FROM src.run_tables t JOIN temp.run_map m ON m.src_id = t.run_id)SQL");
  report.rows_added += run_sql(*db, R"SQL(
    INSERT OR IGNORE INTO main.histograms(run_id, key_id, step, lo, hi, counts)
    SELECT m.dst_id, k.dst_id, h.step, h.lo, h.hi, h.counts FROM src.histograms h
    JOIN temp.run_map m ON m.src_id = h.run_id JOIN temp.key_map k ON k.src_id = h.key_id)SQL");
  report.rows_added += run_sql(*db, R"SQL(
    INSERT OR IGNORE INTO main.console(run_id, seq, wall, stream, line)
    SELECT m.dst_id, c.seq, c.wall, c.stream, c.line FROM src.console c JOIN temp.run_map m ON m.src_id = c.run_id)SQL");

  // Artifacts: versions by digest, made by the same path as a run's log_artifact (so numbered
  // after the target's own versions); files by content, copied and verified first.
  {
    const ContentStore from_content(from), to_content(to);
    Applier applier(*db, to_content);
    std::vector<std::pair<int64_t, Event>> versions;  // source version id, the event that makes it
    {
      Stmt s(*db, "SELECT v.id, a.name, a.type, v.metadata, coalesce(v.run_uid, ''), v.created_at "
                  "FROM src.artifact_versions v JOIN src.artifacts a ON a.id = v.artifact_id ORDER BY a.name, v.version");
      Stmt files(*db, "SELECT path, sha256, size FROM src.artifact_files WHERE version_id = ? ORDER BY path");
      while (s.step()) {
        // Metadata that is not a JSON object (a damaged source) cannot be logged: it arrives empty.
        std::optional<nlohmann::json> metadata = util::try_parse_json(s.text(3));
        if (!metadata || !metadata->is_object()) metadata = nlohmann::json::object();
        ArtifactLogged e{s.text(1), s.text(2), std::move(*metadata), {}, {}, s.real(5)};
        files.bind(1, s.int64(0));
        while (files.step()) e.files.push_back({files.text(0), files.text(1), files.int64(2)});
        files.reset();
        versions.emplace_back(s.int64(0), Event{s.text(4), 0, std::move(e)});
      }
    }
    run_sql(*db, "CREATE TEMP TABLE version_map(src_id INTEGER PRIMARY KEY, dst_id INTEGER)");
    Stmt map(*db, "INSERT INTO temp.version_map(src_id, dst_id) VALUES(?, ?)");
    for (auto& [src_id, event] : versions) {
      const auto& logged = std::get<ArtifactLogged>(event.body);
      Stmt same(*db, "SELECT 1 FROM main.artifact_versions v JOIN main.artifacts a ON a.id = v.artifact_id "
                     "WHERE a.name = ? AND v.digest = ?");
      same.bind(1, logged.name).bind(2, manifest_digest(logged.files));
      const bool present = same.step();
      if (!present)
        for (const auto& f : logged.files) report.files_copied += to_content.copy_from(from_content, f.sha256);
      ArtifactVersion v;
      try {
        v = *applier.apply(event).artifact;
      } catch (const std::invalid_argument& e) {
        throw std::runtime_error(std::string(e.what()) + " (syncing " + from + " into " + to + ")");
      }
      report.artifact_versions_added += !present;
      map.bind(1, src_id).bind(2, v.id).run();
    }
    // Aliases the target lacks; the target's own aliases stay where they are.
    run_sql(*db, R"SQL(
      INSERT OR IGNORE INTO main.artifact_aliases(artifact_id, alias, version_id)
      SELECT (SELECT artifact_id FROM main.artifact_versions WHERE id = m.dst_id), l.alias, m.dst_id
      FROM src.artifact_aliases l JOIN temp.version_map m ON m.src_id = l.version_id WHERE l.alias != 'latest')SQL");
    run_sql(*db, "INSERT OR IGNORE INTO main.artifact_usage(run_uid, version_id) "
                 "SELECT u.run_uid, m.dst_id FROM src.artifact_usage u JOIN temp.version_map m ON m.src_id = u.version_id");
  }
  run_sql(*db, "DROP TABLE temp.run_map");
  run_sql(*db, "DROP TABLE temp.key_map");
  run_sql(*db, "DROP TABLE temp.version_map");
  tx.commit();
  db->exec("DETACH DATABASE src");
  return report;
}

}  // namespace tracker
