#include "tracker/run/run.h"

#include "common/util/clock.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <stdexcept>

namespace tracker {
namespace {

void check_name(const std::string& what, const std::string& name, bool allow_empty = false) {
  if ((!allow_empty && name.empty()) || name.size() > kMaxNameBytes)
    throw std::invalid_argument(what + " must be 1.." + std::to_string(kMaxNameBytes) + " bytes, got " +
                                std::to_string(name.size()));
}

std::string checked_dump(const std::string& what, const nlohmann::json& j) {
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (text.size() > kMaxJsonBytes)
    throw std::invalid_argument(what + " is " + std::to_string(text.size()) + " bytes of JSON; the limit is " +
                                std::to_string(kMaxJsonBytes));
  return text;
}

std::string new_uid() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd() ^
                      static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()));
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(gen()),
                static_cast<unsigned long long>(gen()));
  return buf;
}

// Deletes run `run`'s points after `step` (but not sampled system metrics), then rebuilds its
// tiers and summaries from what remains.
void rewind(Db& db, int64_t run, int64_t step) {
  for (const char* sql : {"DELETE FROM run_tables WHERE run_id = ? AND step > ?",
                          "DELETE FROM histograms WHERE run_id = ? AND step > ?",
                          "DELETE FROM metrics WHERE run_id = ? AND step > ? AND key_id NOT IN "
                          "(SELECT id FROM metric_keys WHERE name GLOB 'system/*')"}) {
    Stmt del(db, sql);
    del.bind(1, run).bind(2, step).run();
  }
  rebuild_aggregates(db, run);
}

}  // namespace

bool is_final_status(const std::string& s) {
  return s == "finished" || s == "failed" || s == "stopped" || s == "crashed" || s == "early-stopped" || s == "cancelled";
}

Run Run::create(Store& store, const RunSpec& spec) {
  check_name("project name", spec.project);
  check_name("run name", spec.name, /*allow_empty=*/true);
  check_name("group name", spec.group, true);
  for (const auto& tag : spec.tags) check_name("tag", tag);
  if (!spec.config.is_object()) throw std::invalid_argument("run config must be a JSON object");
  const std::string config = checked_dump("run config", spec.config);
  const std::string tags = checked_dump("tags", spec.tags);
  if (spec.notes.size() > kMaxJsonBytes) throw std::invalid_argument("run notes are over the size limit");
  const std::string uid = new_uid();
  const std::string name = spec.name.empty() ? "run-" + uid.substr(0, 8) : spec.name;
  int64_t id = 0;
  store.execute([&](Db& db) {
    Stmt project(db, "INSERT INTO projects(name) VALUES(?) ON CONFLICT(name) DO UPDATE SET name = name RETURNING id");
    project.bind(1, spec.project);
    if (!project.step()) db.fail("project");
    const int64_t project_id = project.int64(0);
    project.reset();
    Stmt insert(db, "INSERT INTO runs(uid, project_id, name, group_name, tags, notes, config, status, created_at, heartbeat_at) "
                    "VALUES(?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)");
    const double t = util::unix_time();
    insert.bind(1, uid).bind(2, project_id).bind(3, name).bind(4, spec.group).bind(5, tags).bind(6, spec.notes);
    insert.bind(7, config).bind(8, t).bind(9, t).run();
    id = sqlite3_last_insert_rowid(db.handle());
  });
  return Run(&store, id, uid, 0);
}

Run Run::resume(Store& store, int64_t run_id, int64_t from_step) {
  std::string uid;
  int64_t next_seq = 0;
  store.execute([&](Db& db) {
    Stmt find(db, "SELECT uid, (SELECT coalesce(max(seq) + 1, 0) FROM console WHERE run_id = ?1) FROM runs WHERE id = ?1");
    find.bind(1, run_id);
    if (!find.step()) throw std::invalid_argument("no run with id " + std::to_string(run_id) + " in " + store.path());
    uid = find.text(0);
    next_seq = find.int64(1);
    if (from_step >= 0) rewind(db, run_id, from_step);
    Stmt update(db, "UPDATE runs SET status = 'running', heartbeat_at = ?, finished_at = NULL WHERE id = ?");
    update.bind(1, util::unix_time()).bind(2, run_id).run();
  });
  return Run(&store, run_id, uid, next_seq);
}

void Run::log(int64_t step, std::initializer_list<std::pair<std::string_view, double>> values) {
  store_->log_points(id_, step, util::unix_time(), values.begin(), values.size());
}

void Run::log(int64_t step, const std::vector<std::pair<std::string, double>>& values) {
  std::vector<std::pair<std::string_view, double>> views;
  views.reserve(values.size());
  for (const auto& [k, v] : values) views.emplace_back(k, v);
  store_->log_points(id_, step, util::unix_time(), views.data(), views.size());
}

void Run::define_metric(const std::string& key, Goal goal) {
  check_name("metric key", key);
  const char* g = goal == Goal::kMinimize ? "min" : goal == Goal::kMaximize ? "max" : "";
  const int64_t run = id_;
  Store* store = store_;
  store_->enqueue([store, run, key, g](Db& db) {
    const int64_t key_id = store->key_id(db, key);
    Stmt s(db, "INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count, goal) VALUES(?, ?, NULL, -1, NULL, NULL, 0, ?) "
               "ON CONFLICT(run_id, key_id) DO UPDATE SET goal = excluded.goal");
    s.bind(1, run).bind(2, key_id).bind(3, g).run();
  });
}

void Run::log_table(const std::string& name, int64_t step, const nlohmann::json& columns, const nlohmann::json& rows) {
  check_name("table name", name);
  if (!columns.is_array() || columns.empty()) throw std::invalid_argument("table '" + name + "': columns must be a non-empty array");
  for (const auto& c : columns)
    if (!c.is_string()) throw std::invalid_argument("table '" + name + "': column names must be strings");
  if (!rows.is_array()) throw std::invalid_argument("table '" + name + "': rows must be an array");
  for (size_t i = 0; i < rows.size(); ++i)
    if (!rows[i].is_array() || rows[i].size() != columns.size())
      throw std::invalid_argument("table '" + name + "': row " + std::to_string(i) + " does not have " +
                                  std::to_string(columns.size()) + " values");
  std::string cols = checked_dump("table '" + name + "' columns", columns);
  std::string body = checked_dump("table '" + name + "'", rows);
  const int64_t run = id_;
  store_->enqueue([run, name, step, cols = std::move(cols), body = std::move(body)](Db& db) {
    Stmt s(db, "INSERT OR REPLACE INTO run_tables(run_id, name, step, columns, rows) VALUES(?, ?, ?, ?, ?)");
    s.bind(1, run).bind(2, name).bind(3, step).bind(4, cols).bind(5, body).run();
  });
}

void Run::log_histogram(const std::string& key, int64_t step, const std::vector<double>& values, int bins) {
  if (bins < 1 || bins > 4096) throw std::invalid_argument("histogram bins must be 1..4096");
  double lo = INFINITY, hi = -INFINITY;
  for (double v : values)
    if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  std::vector<int64_t> counts(lo <= hi ? bins : 0, 0);
  if (lo > hi) lo = hi = 0;  // no finite values: an empty histogram
  for (double v : values) {
    if (!std::isfinite(v)) continue;
    int b = hi > lo ? static_cast<int>((v - lo) / (hi - lo) * bins) : 0;
    counts[std::min(b, bins - 1)]++;
  }
  log_histogram(key, step, lo, hi, counts);
}

void Run::log_histogram(const std::string& key, int64_t step, double lo, double hi, const std::vector<int64_t>& counts) {
  check_name("histogram key", key);
  if (!(std::isfinite(lo) && std::isfinite(hi) && lo <= hi)) throw std::invalid_argument("histogram range must be finite, lo <= hi");
  const std::string body = checked_dump("histogram", counts);
  const int64_t run = id_;
  Store* store = store_;
  store_->enqueue([store, run, key, step, lo, hi, body](Db& db) {
    Stmt s(db, "INSERT OR REPLACE INTO histograms(run_id, key_id, step, lo, hi, counts) VALUES(?, ?, ?, ?, ?, ?)");
    s.bind(1, run).bind(2, store->key_id(db, key)).bind(3, step).bind(4, lo).bind(5, hi).bind(6, body).run();
  });
}

void Run::log_console(const std::string& stream, const std::string& line) {
  if (stream != "stdout" && stream != "stderr") throw std::invalid_argument("console stream must be stdout or stderr");
  const std::string text = line.size() > kMaxLineBytes ? line.substr(0, kMaxLineBytes) + "…[cut]" : line;
  const int64_t run = id_, seq = console_seq_++;
  const double wall = util::unix_time();
  store_->enqueue([run, seq, wall, stream, text](Db& db) {
    Stmt s(db, "INSERT OR REPLACE INTO console(run_id, seq, wall, stream, line) VALUES(?, ?, ?, ?, ?)");
    s.bind(1, run).bind(2, seq).bind(3, wall).bind(4, stream).bind(5, text).run();
  });
}

void Run::set_config(const nlohmann::json& config) {
  if (!config.is_object()) throw std::invalid_argument("run config must be a JSON object");
  const int64_t run = id_;
  store_->enqueue([run, text = checked_dump("run config", config)](Db& db) {
    Stmt s(db, "UPDATE runs SET config = ? WHERE id = ?");
    s.bind(1, text).bind(2, run).run();
  });
}

void Run::heartbeat() {
  const int64_t run = id_;
  const double wall = util::unix_time();
  store_->enqueue([run, wall](Db& db) {
    Stmt s(db, "UPDATE runs SET heartbeat_at = ? WHERE id = ?");
    s.bind(1, wall).bind(2, run).run();
  });
}

void Run::finish(const std::string& status) {
  if (!is_final_status(status))
    throw std::invalid_argument("'" + status + "' is not a final status (finished, failed, stopped, crashed, early-stopped, cancelled)");
  const int64_t run = id_;
  const double wall = util::unix_time();
  store_->enqueue([run, wall, status](Db& db) {
    Stmt s(db, "UPDATE runs SET status = ?, finished_at = ?, heartbeat_at = ? WHERE id = ?");
    s.bind(1, status).bind(2, wall).bind(3, wall).bind(4, run).run();
  });
  store_->flush();
}

}  // namespace tracker
