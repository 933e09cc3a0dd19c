#include "tracker/store/apply.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <tuple>
#include <type_traits>
#include <variant>

#include "common/util/json.h"
#include "tracker/db/schema.h"
#include "tracker/query/artifacts.h"

namespace tracker {
namespace {

using nlohmann::json;

// Running aggregate of points: what a summary row and a tier bucket hold.
struct Agg {
  double min = NAN, max = NAN;  // NaN: no non-NaN value yet
  double last = NAN, last_wall = 0;
  int64_t last_step = INT64_MIN;
  int64_t count = 0;
  void add(int64_t step, double value, double wall) {
    if (!std::isnan(value)) {
      min = std::isnan(min) ? value : std::min(min, value);
      max = std::isnan(max) ? value : std::max(max, value);
    }
    if (step >= last_step) last_step = step, last = value, last_wall = wall;
    ++count;
  }
};

// SQLite cannot store NaN: NULL means NaN in metric values.
void bind_value(Stmt& s, int i, double v) {
  if (std::isnan(v)) {
    s.bind_null(i);
  } else {
    s.bind(i, v);
  }
}

void move_alias(Db& db, int64_t artifact_id, const std::string& alias, int64_t version_id) {
  Stmt s(db, "INSERT OR REPLACE INTO artifact_aliases(artifact_id, alias, version_id) VALUES(?, ?, ?)");
  s.bind(1, artifact_id).bind(2, alias).bind(3, version_id).run();
}

template <class T>
constexpr bool kRunScoped = !std::is_same_v<T, ArtifactLogged> && !std::is_same_v<T, ArtifactUsed> &&
                            !std::is_same_v<T, ArtifactAlias> && !std::is_same_v<T, ArtifactDeleted>;

}  // namespace

void rebuild_aggregates(Db& db, int64_t run) {
  Stmt clear(db, "DELETE FROM metric_tiers WHERE run_id = ?");
  clear.bind(1, run).run();
  Stmt tiers(db, R"SQL(
    INSERT INTO metric_tiers(run_id, key_id, width, bucket, min, max, last, last_step, last_wall, count)
    SELECT run_id, key_id, ?2, CASE WHEN step >= 0 THEN step / ?2 ELSE (step - ?2 + 1) / ?2 END AS b,
           min(value), max(value), NULL, max(step), 0, count(*)
    FROM metrics WHERE run_id = ?1 GROUP BY key_id, b)SQL");
  for (int64_t width : kTierWidths) tiers.bind(1, run).bind(2, width).run();
  Stmt tier_last(db, R"SQL(
    UPDATE metric_tiers SET (last, last_wall) = (SELECT value, wall FROM metrics m WHERE m.run_id = metric_tiers.run_id
      AND m.key_id = metric_tiers.key_id AND m.step = metric_tiers.last_step) WHERE run_id = ?)SQL");
  tier_last.bind(1, run).run();
  Stmt reset(db, "UPDATE summaries SET last = NULL, last_step = -1, min = NULL, max = NULL, count = 0 WHERE run_id = ?");
  reset.bind(1, run).run();
  Stmt summaries(db, R"SQL(
    INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count)
    SELECT run_id, key_id, NULL, max(step), min(value), max(value), count(*) FROM metrics WHERE run_id = ? GROUP BY key_id
    ON CONFLICT(run_id, key_id) DO UPDATE SET
      last_step = excluded.last_step, min = excluded.min, max = excluded.max, count = excluded.count)SQL");
  summaries.bind(1, run).run();
  Stmt summary_last(db, R"SQL(
    UPDATE summaries SET last = (SELECT value FROM metrics m WHERE m.run_id = summaries.run_id
      AND m.key_id = summaries.key_id AND m.step = summaries.last_step) WHERE run_id = ?)SQL");
  summary_last.bind(1, run).run();
  Stmt empty(db, "DELETE FROM summaries WHERE run_id = ? AND count = 0 AND goal = ''");
  empty.bind(1, run).run();
}

Applier::RunState* Applier::find_run(const std::string& uid) {
  if (last_run_ && last_run_->first == uid) return &last_run_->second;  // runs log in streaks
  auto it = runs_.find(uid);
  if (it != runs_.end()) return &(last_run_ = &*it)->second;
  Stmt s(db_, "SELECT id, event_seq FROM runs WHERE uid = ?");
  s.bind(1, uid);
  if (!s.step()) return nullptr;
  last_run_ = &*runs_.emplace(uid, RunState{s.int64(0), static_cast<uint64_t>(s.int64(1)), false}).first;
  return &last_run_->second;
}

int64_t Applier::key_id(const std::string& name) {
  auto it = key_ids_.find(name);
  if (it != key_ids_.end()) return it->second;
  Stmt insert(db_, "INSERT OR IGNORE INTO metric_keys(name) VALUES(?)");
  insert.bind(1, name).run();
  Stmt select(db_, "SELECT id FROM metric_keys WHERE name = ?");
  select.bind(1, name);
  if (!select.step()) db_.fail("metric key vanished");
  return key_ids_.emplace(name, select.int64(0)).first->second;
}

// Deletes run `run`'s points, tables and histograms after `step` (but not its sampled system
// metrics), then rebuilds its tiers and summaries from what remains.
void Applier::rewind(int64_t run, int64_t step) {
  write_points();  // points logged before the rewind are rewound too
  for (const char* sql : {"DELETE FROM run_tables WHERE run_id = ? AND step > ?",
                          "DELETE FROM histograms WHERE run_id = ? AND step > ?",
                          "DELETE FROM metrics WHERE run_id = ? AND step > ? AND key_id NOT IN "
                          "(SELECT id FROM metric_keys WHERE name GLOB 'system/*')"}) {
    Stmt del(db_, sql);
    del.bind(1, run).bind(2, step).run();
  }
  rebuild_aggregates(db_, run);
}

Applied Applier::apply(const Event& event) {
  Applied out;
  RunState* run = nullptr;
  const bool run_scoped = std::visit([](const auto& b) { return kRunScoped<std::decay_t<decltype(b)>>; }, event.body);
  if (run_scoped && event.run.empty())
    throw std::invalid_argument(std::string("a ") + type_name(event.body) + " event needs its run's uid");
  if (!event.run.empty() && (run_scoped || event.seq > 0)) {
    run = find_run(event.run);
    if (run) {
      out.run_id = run->id;
      if (event.seq > 0 && event.seq <= run->seq) {
        out.duplicate = true;
        return out;
      }
    } else if (!std::holds_alternative<RunCreated>(event.body)) {
      throw NotFound("no run " + event.run + " in " + db_.path() + " (a " + type_name(event.body) + " event before its run_created)");
    }
  }
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, RunCreated>) {
          if (run) {  // unsequenced, or sequenced from a store that lost count: the run is there
            out.duplicate = true;
            return;
          }
          Stmt project(db_, "INSERT INTO projects(name) VALUES(?) ON CONFLICT(name) DO UPDATE SET name = name RETURNING id");
          project.bind(1, e.project);
          if (!project.step()) db_.fail("project");
          const int64_t project_id = project.int64(0);
          project.reset();
          Stmt insert(db_, "INSERT INTO runs(uid, project_id, name, group_name, tags, notes, config, status, created_at, "
                           "heartbeat_at, event_seq) VALUES(?, ?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)");
          const std::string name = e.name.empty() ? "run-" + event.run.substr(0, 8) : e.name;
          insert.bind(1, event.run).bind(2, project_id).bind(3, name).bind(4, e.group).bind(5, util::dump_json(e.tags)).bind(6, e.notes);
          insert.bind(7, util::dump_json(e.config)).bind(8, e.wall).bind(9, e.wall).bind(10, static_cast<int64_t>(event.seq)).run();
          out.run_id = sqlite3_last_insert_rowid(db_.handle());
          run = &runs_.emplace(event.run, RunState{out.run_id, event.seq, false}).first->second;
        } else if constexpr (std::is_same_v<T, RunResumed>) {
          if (e.from_step >= 0) rewind(run->id, e.from_step);
          Stmt update(db_, "UPDATE runs SET status = 'running', heartbeat_at = ?, finished_at = NULL WHERE id = ?");
          update.bind(1, e.wall).bind(2, run->id).run();
        } else if constexpr (std::is_same_v<T, RunFinished>) {
          Stmt s(db_, "UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?");
          s.bind(1, e.status).bind(2, e.wall).bind(3, e.wall).bind(4, run->id).run();
        } else if constexpr (std::is_same_v<T, Metrics>) {
          // Steps usually log the keys of the step before, in the same order: compare with
          // those before searching the dictionary.
          if (last_keys_.size() < e.values.size()) last_keys_.resize(e.values.size());
          for (size_t i = 0; i < e.values.size(); ++i) {
            auto& [name, id] = last_keys_[i];
            if (name != e.values[i].first) id = key_id(e.values[i].first), name = e.values[i].first;  // id first: it may throw
          }
          for (size_t i = 0; i < e.values.size(); ++i)
            points_.push_back({run->id, last_keys_[i].second, e.step, e.values[i].second, e.wall});
        } else if constexpr (std::is_same_v<T, MetricGoal>) {
          Stmt s(db_, "INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count, goal) "
                      "VALUES(?, ?, NULL, -1, NULL, NULL, 0, ?) ON CONFLICT(run_id, key_id) DO UPDATE SET goal = excluded.goal");
          s.bind(1, run->id).bind(2, key_id(e.key)).bind(3, e.goal).run();
        } else if constexpr (std::is_same_v<T, Table>) {
          Stmt s(db_, "INSERT OR REPLACE INTO run_tables(run_id, name, step, columns, rows) VALUES(?, ?, ?, ?, ?)");
          s.bind(1, run->id).bind(2, e.name).bind(3, e.step).bind(4, util::dump_json(e.columns)).bind(5, util::dump_json(e.rows)).run();
        } else if constexpr (std::is_same_v<T, Histogram>) {
          Stmt s(db_, "INSERT OR REPLACE INTO histograms(run_id, key_id, step, lo, hi, counts) VALUES(?, ?, ?, ?, ?, ?)");
          s.bind(1, run->id).bind(2, key_id(e.key)).bind(3, e.step).bind(4, e.lo).bind(5, e.hi).bind(6, util::dump_json(e.counts)).run();
        } else if constexpr (std::is_same_v<T, ConsoleLine>) {
          // Lines of a run count 0, 1, 2, … in the order they are applied.
          Stmt s(db_, "INSERT INTO console(run_id, seq, wall, stream, line) "
                      "VALUES(?1, (SELECT coalesce(max(seq) + 1, 0) FROM console WHERE run_id = ?1), ?2, ?3, ?4)");
          s.bind(1, run->id).bind(2, e.wall).bind(3, e.stream).bind(4, e.line).run();
        } else if constexpr (std::is_same_v<T, ConfigSet>) {
          Stmt s(db_, "UPDATE runs SET config = ? WHERE id = ?");
          s.bind(1, util::dump_json(e.config)).bind(2, run->id).run();
        } else if constexpr (std::is_same_v<T, Heartbeat>) {
          Stmt s(db_, "UPDATE runs SET heartbeat_at = ? WHERE id = ?");
          s.bind(1, e.wall).bind(2, run->id).run();
        } else if constexpr (std::is_same_v<T, ArtifactLogged>) {
          out.artifact = log_artifact(event.run, e);
        } else if constexpr (std::is_same_v<T, ArtifactUsed>) {
          const int64_t id = resolve_artifact(db_, e.ref);
          Stmt u(db_, "INSERT OR IGNORE INTO artifact_usage(run_uid, version_id) VALUES(?, ?)");
          u.bind(1, event.run).bind(2, id).run();
          out.artifact = load_artifact_version(db_, id);
        } else if constexpr (std::is_same_v<T, ArtifactAlias>) {
          const int64_t id = resolve_artifact(db_, e.ref);
          Stmt a(db_, "SELECT artifact_id FROM artifact_versions WHERE id = ?");
          a.bind(1, id);
          if (!a.step()) db_.fail("artifact version vanished");
          move_alias(db_, a.int64(0), e.alias, id);
          out.artifact = load_artifact_version(db_, id);
        } else if constexpr (std::is_same_v<T, ArtifactDeleted>) {
          out.artifact = delete_artifact(e.ref);
        }
      },
      event.body);
  if (run && event.seq > run->seq) run->seq = event.seq, run->dirty = true;
  if (event.seq > 0 && !out.duplicate && relaying()) {
    Stmt log(db_, "INSERT INTO relay_log(event) VALUES(?)");
    log.bind(1, util::dump_json(to_json(event))).run();
  }
  return out;
}

bool Applier::relaying() {
  if (relay_ < 0) {
    Stmt s(db_, "SELECT value FROM settings WHERE name = 'relay'");
    relay_ = s.step() && s.text(0) == "1";
  }
  return relay_ == 1;
}

ArtifactVersion Applier::log_artifact(const std::string& run_uid, const ArtifactLogged& e) {
  Stmt ins(db_, "INSERT OR IGNORE INTO artifacts(name, type) VALUES(?, ?)");
  ins.bind(1, e.name).bind(2, e.type).run();
  Stmt find(db_, "SELECT id, type FROM artifacts WHERE name = ?");
  find.bind(1, e.name);
  if (!find.step()) db_.fail("artifact vanished");
  const int64_t artifact_id = find.int64(0);
  if (find.text(1) != e.type)
    throw std::invalid_argument("artifact '" + e.name + "' has type '" + find.text(1) + "', not '" + e.type + "'");
  const std::string digest = manifest_digest(e.files);
  Stmt same(db_, "SELECT id FROM artifact_versions WHERE artifact_id = ? AND digest = ?");
  same.bind(1, artifact_id).bind(2, digest);
  int64_t version_id;
  if (same.step()) {
    version_id = same.int64(0);  // unchanged content: no new version
  } else {
    // A delete moves files aside inside its write transaction, so within ours what is there
    // stays there; what is not (deleted since the producer stored it) must be stored again.
    for (const ArtifactFile& f : e.files)
      if (!content_.has(f.sha256) && !gone_.count(f.sha256))
        throw MissingContent("artifact '" + e.name + "': file " + f.path + " (sha256 " + f.sha256 + ") is not in " +
                             content_.root());
    int64_t total = 0;
    for (const ArtifactFile& f : e.files) total += f.size;
    Stmt v(db_, "INSERT INTO artifact_versions(artifact_id, version, digest, size, metadata, run_uid, created_at) "
                "VALUES(?1, (SELECT coalesce(max(version) + 1, 0) FROM artifact_versions WHERE artifact_id = ?1), ?2, ?3, ?4, "
                "nullif(?5, ''), ?6)");
    v.bind(1, artifact_id).bind(2, digest).bind(3, total).bind(4, util::dump_json(e.metadata)).bind(5, run_uid).bind(6, e.wall).run();
    version_id = sqlite3_last_insert_rowid(db_.handle());
    Stmt f(db_, "INSERT INTO artifact_files(version_id, path, sha256, size) VALUES(?, ?, ?, ?)");
    for (const ArtifactFile& file : e.files) f.bind(1, version_id).bind(2, file.path).bind(3, file.sha256).bind(4, file.size).run();
    move_alias(db_, artifact_id, "latest", version_id);
  }
  for (const auto& a : e.aliases) move_alias(db_, artifact_id, a, version_id);
  return load_artifact_version(db_, version_id);
}

ArtifactVersion Applier::delete_artifact(const std::string& ref) {
  const int64_t id = resolve_artifact(db_, ref);
  ArtifactVersion gone = load_artifact_version(db_, id);
  const std::string label = gone.name + ":v" + std::to_string(gone.version);
  if (!gone.aliases.empty()) {
    std::string names;
    for (const auto& a : gone.aliases) names += (names.empty() ? "" : ", ") + a;
    throw std::invalid_argument(label + " is still " + names + "; move the alias to another version before deleting it");
  }
  for (const char* sql : {"DELETE FROM artifact_files WHERE version_id = ?", "DELETE FROM artifact_usage WHERE version_id = ?",
                          "DELETE FROM artifact_versions WHERE id = ?"}) {
    Stmt d(db_, sql);
    d.bind(1, id).run();
  }
  // Files no other version holds leave the content store. They are moved aside now, inside the
  // transaction (a concurrent writer then finds them gone and stores them again), and removed
  // once it commits.
  Stmt held(db_, "SELECT 1 FROM artifact_files WHERE sha256 = ? LIMIT 1");
  std::vector<std::pair<std::string, std::string>> moved;
  try {
    for (const auto& file : gone.files) {
      held.bind(1, file.sha256);
      const bool still_held = held.step();
      held.reset();
      if (still_held) continue;
      const std::string aside = content_.move_aside(file.sha256);
      if (!aside.empty()) moved.emplace_back(file.sha256, aside);
    }
  } catch (...) {
    for (const auto& [sha, aside] : moved) content_.restore(sha, aside);
    throw;
  }
  moved_.insert(moved_.end(), moved.begin(), moved.end());
  return gone;
}

// A metrics event fails, if at all, before it buffers its points (the new metric keys it wrote
// are kept, and harmless): it needs no savepoint, nor the buffered points written first, so a
// batch of them stays one pass of aggregate updates instead of one per event. Any other event
// is applied in a savepoint, the buffered points written first so its rollback cannot lose them.
Applied Applier::apply_isolated(const Event& event) {
  if (std::holds_alternative<Metrics>(event.body)) {
    try {
      return apply(event);
    } catch (const DbError& e) {
      throw TransactionLost(e.what());  // without a savepoint nothing shows what it undid
    }
  }
  write_points();
  db_.exec("SAVEPOINT event");
  try {
    Applied applied = apply(event);
    db_.exec("RELEASE event");
    return applied;
  } catch (...) {
    try {
      db_.exec("ROLLBACK TO event");
      db_.exec("RELEASE event");
    } catch (const DbError& e) {
      throw TransactionLost(e.what());
    }
    forget_keys();
    throw;
  }
}

void Applier::write_points() {
  if (points_.empty()) return;
  // In (run, key, step) order the inserts walk the clustered index forwards and each series'
  // aggregates are one linear pass. Stable: of two points at one step the later wins.
  std::stable_sort(points_.begin(), points_.end(), [](const Point& a, const Point& b) {
    return std::tie(a.run_id, a.key_id, a.step) < std::tie(b.run_id, b.key_id, b.step);
  });
  Stmt insert(db_, "INSERT OR REPLACE INTO metrics(run_id, key_id, step, value, wall) VALUES(?, ?, ?, ?, ?)");
  for (const Point& p : points_) {
    insert.bind(1, p.run_id).bind(2, p.key_id).bind(3, p.step);
    bind_value(insert, 4, p.value);
    insert.bind(5, p.wall).run();
  }
  // Merge this batch's aggregates into the stored ones.
  Stmt summary(db_, R"SQL(
    INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count) VALUES(?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(run_id, key_id) DO UPDATE SET
      last = CASE WHEN excluded.last_step >= last_step THEN excluded.last ELSE last END,
      last_step = max(last_step, excluded.last_step),
      min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)),
      max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)),
      count = count + excluded.count)SQL");
  Stmt tier(db_, R"SQL(
    INSERT INTO metric_tiers(run_id, key_id, width, bucket, min, max, last, last_step, last_wall, count)
    VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT(run_id, key_id, width, bucket) DO UPDATE SET
      last = CASE WHEN excluded.last_step >= last_step THEN excluded.last ELSE last END,
      last_wall = CASE WHEN excluded.last_step >= last_step THEN excluded.last_wall ELSE last_wall END,
      last_step = max(last_step, excluded.last_step),
      min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)),
      max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)),
      count = count + excluded.count)SQL");
  for (size_t begin = 0; begin < points_.size();) {
    const int64_t run = points_[begin].run_id, key = points_[begin].key_id;
    size_t end = begin;
    Agg all;
    for (; end < points_.size() && points_[end].run_id == run && points_[end].key_id == key; ++end)
      all.add(points_[end].step, points_[end].value, points_[end].wall);
    summary.bind(1, run).bind(2, key);
    bind_value(summary, 3, all.last);
    summary.bind(4, all.last_step);
    bind_value(summary, 5, all.min);
    bind_value(summary, 6, all.max);
    summary.bind(7, all.count).run();
    for (int64_t width : kTierWidths) {
      for (size_t i = begin; i < end;) {
        const int64_t bucket = bucket_of(points_[i].step, width);
        Agg a;
        for (; i < end && bucket_of(points_[i].step, width) == bucket; ++i)
          a.add(points_[i].step, points_[i].value, points_[i].wall);
        tier.bind(1, run).bind(2, key).bind(3, width).bind(4, bucket);
        bind_value(tier, 5, a.min);
        bind_value(tier, 6, a.max);
        bind_value(tier, 7, a.last);
        tier.bind(8, a.last_step).bind(9, a.last_wall).bind(10, a.count).run();
      }
    }
    begin = end;
  }
  points_.clear();
}

void Applier::finish_batch() {
  write_points();
  Stmt s(db_, "UPDATE runs SET event_seq = ? WHERE id = ?");
  for (auto& [uid, run] : runs_)
    if (run.dirty) s.bind(1, static_cast<int64_t>(run.seq)).bind(2, run.id).run(), run.dirty = false;
}

void Applier::committed() {
  std::error_code ignored;
  for (const auto& m : moved_) std::filesystem::remove(m.second, ignored);
  moved_.clear();
  runs_.clear();  // other processes may write these runs before our next batch
  last_run_ = nullptr;
}

void Applier::rolled_back() {
  for (const auto& [sha, aside] : moved_) content_.restore(sha, aside);
  moved_.clear();
  runs_.clear();
  last_run_ = nullptr;
  points_.clear();
  forget_keys();
}

}  // namespace tracker
