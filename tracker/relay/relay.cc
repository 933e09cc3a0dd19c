#include "tracker/relay/relay.h"

#include <sys/stat.h>

#include <cmath>
#include <stdexcept>

#include "common/util/json.h"
#include "tracker/db/schema.h"

namespace tracker {
namespace {

using nlohmann::json;

json real_or_null(const Stmt& s, int col) { return s.is_null(col) ? json(nullptr) : json(s.real(col)); }

// seed[...] lookups that name the field they miss.
const json& need(const json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key)) throw std::invalid_argument("run seed: " + where + "." + key + " is missing");
  return j[key];
}
std::string text_of(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_string()) throw std::invalid_argument("run seed: " + where + "." + key + " is not a string");
  return v.get<std::string>();
}
int64_t int_of(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_number_integer()) throw std::invalid_argument("run seed: " + where + "." + key + " is not an integer");
  return v.get<int64_t>();
}
double real_of(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_number()) throw std::invalid_argument("run seed: " + where + "." + key + " is not a number");
  return v.get<double>();
}
const json& array_of(const json& j, const char* key, const std::string& where) {
  const json& v = need(j, key, where);
  if (!v.is_array()) throw std::invalid_argument("run seed: " + where + "." + key + " is not an array");
  return v;
}
Stmt& bind_real_or_null(Stmt& s, int i, const json& v) { return v.is_number() ? s.bind(i, v.get<double>()) : s.bind_null(i); }

}  // namespace

void create_relay_database(const std::string& path) {
  std::unique_ptr<Db> db = open_database(path, OpenMode::kReadWrite);
  db->exec("INSERT OR REPLACE INTO settings(name, value) VALUES('relay', '1')");
}

std::vector<RelayEntry> read_relay_log(Db& db, int64_t after, size_t max_entries, size_t max_bytes) {
  std::vector<RelayEntry> out;
  Stmt s(db, "SELECT id, event FROM relay_log WHERE id > ? ORDER BY id LIMIT ?");
  s.bind(1, after).bind(2, static_cast<int64_t>(max_entries));
  size_t bytes = 0;
  while (s.step()) {
    std::string event = s.text(1);
    if (!out.empty() && bytes + event.size() > max_bytes) break;
    bytes += event.size();
    out.push_back({s.int64(0), std::move(event)});
  }
  return out;
}

int64_t relay_log_end(Db& db) {
  Stmt s(db, "SELECT coalesce(max(id), 0) FROM relay_log");
  return s.step() ? s.int64(0) : 0;
}

json export_run_seed(Db& db, const std::string& uid) {
  Stmt r(db, "SELECT r.id, r.uid, p.name, r.name, r.group_name, r.tags, r.notes, r.config, r.status, r.created_at, "
             "r.heartbeat_at, r.finished_at, r.event_seq FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.uid = ?");
  r.bind(1, uid);
  if (!r.step()) throw NotFound("no run " + uid + " in " + db.path());
  const int64_t run_id = r.int64(0);
  json seed;
  seed["run"] = {{"id", run_id},
                 {"uid", r.text(1)},
                 {"project", r.text(2)},
                 {"name", r.text(3)},
                 {"group", r.text(4)},
                 {"tags", util::parse_json(r.text(5), "runs.tags")},
                 {"notes", r.text(6)},
                 {"config", util::parse_json(r.text(7), "runs.config")},
                 {"status", r.text(8)},
                 {"created_at", r.real(9)},
                 {"heartbeat_at", r.real(10)},
                 {"finished_at", real_or_null(r, 11)},
                 {"event_seq", r.int64(12)}};
  json summaries = json::array();
  Stmt s(db, "SELECT k.name, s.last, s.last_step, s.min, s.max, s.count, s.goal FROM summaries s "
             "JOIN metric_keys k ON k.id = s.key_id WHERE s.run_id = ? ORDER BY k.name");
  s.bind(1, run_id);
  while (s.step())
    summaries.push_back({{"key", s.text(0)}, {"last", real_or_null(s, 1)}, {"last_step", s.int64(2)}, {"min", real_or_null(s, 3)},
                         {"max", real_or_null(s, 4)}, {"count", s.int64(5)}, {"goal", s.text(6)}});
  seed["summaries"] = std::move(summaries);
  json artifacts = json::array();
  Stmt a(db, "SELECT id, name, type FROM artifacts WHERE id IN (SELECT artifact_id FROM artifact_versions WHERE run_uid = ?) "
             "ORDER BY name");
  a.bind(1, uid);
  Stmt v(db, "SELECT id, version, digest, size, metadata, run_uid, created_at FROM artifact_versions WHERE artifact_id = ? "
             "ORDER BY version");
  Stmt f(db, "SELECT path, sha256, size FROM artifact_files WHERE version_id = ? ORDER BY path");
  Stmt l(db, "SELECT l.alias, v.version FROM artifact_aliases l JOIN artifact_versions v ON v.id = l.version_id "
             "WHERE l.artifact_id = ? ORDER BY l.alias");
  while (a.step()) {
    json versions = json::array(), aliases = json::object();
    v.bind(1, a.int64(0));
    while (v.step()) {
      json files = json::array();
      f.bind(1, v.int64(0));
      while (f.step()) files.push_back({{"path", f.text(0)}, {"sha256", f.text(1)}, {"size", f.int64(2)}});
      f.reset();
      versions.push_back({{"version", v.int64(1)},
                          {"digest", v.text(2)},
                          {"size", v.int64(3)},
                          {"metadata", util::parse_json(v.text(4), "artifact_versions.metadata")},
                          {"run_uid", v.is_null(5) ? json(nullptr) : json(v.text(5))},
                          {"created_at", v.real(6)},
                          {"files", std::move(files)}});
    }
    v.reset();
    l.bind(1, a.int64(0));
    while (l.step()) aliases[l.text(0)] = l.int64(1);
    l.reset();
    artifacts.push_back({{"name", a.text(1)}, {"type", a.text(2)}, {"versions", std::move(versions)}, {"aliases", std::move(aliases)}});
  }
  seed["artifacts"] = std::move(artifacts);
  return seed;
}

int64_t import_run_seed(const std::string& path, const json& seed) {
  struct stat st;
  if (::stat(path.c_str(), &st) == 0) throw std::invalid_argument(path + ": exists already; a run seed makes a new database");
  const json& run = need(seed, "run", "seed");
  const int64_t run_id = int_of(run, "id", "run");
  const std::string uid = text_of(run, "uid", "run");
  std::unique_ptr<Db> db = open_database(path, OpenMode::kReadWrite);
  WriteTransaction tx(*db);
  db->exec("INSERT OR REPLACE INTO settings(name, value) VALUES('relay', '1')");
  Stmt p(*db, "INSERT INTO projects(name) VALUES(?)");
  p.bind(1, text_of(run, "project", "run")).run();
  const int64_t project_id = sqlite3_last_insert_rowid(db->handle());
  Stmt r(*db, "INSERT INTO runs(id, uid, project_id, name, group_name, tags, notes, config, status, created_at, heartbeat_at, "
              "finished_at, event_seq) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
  r.bind(1, run_id).bind(2, uid).bind(3, project_id).bind(4, text_of(run, "name", "run")).bind(5, text_of(run, "group", "run"));
  r.bind(6, util::dump_json(need(run, "tags", "run"))).bind(7, text_of(run, "notes", "run"));
  r.bind(8, util::dump_json(need(run, "config", "run"))).bind(9, text_of(run, "status", "run"));
  r.bind(10, real_of(run, "created_at", "run")).bind(11, real_of(run, "heartbeat_at", "run"));
  bind_real_or_null(r, 12, need(run, "finished_at", "run")).bind(13, int_of(run, "event_seq", "run")).run();

  Stmt key(*db, "INSERT INTO metric_keys(name) VALUES(?)");
  Stmt sum(*db, "INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count, goal) VALUES(?, ?, ?, ?, ?, ?, ?, ?)");
  for (const json& s : array_of(seed, "summaries", "seed")) {
    key.bind(1, text_of(s, "key", "summaries[]")).run();
    sum.bind(1, run_id).bind(2, static_cast<int64_t>(sqlite3_last_insert_rowid(db->handle())));
    bind_real_or_null(sum, 3, need(s, "last", "summaries[]")).bind(4, int_of(s, "last_step", "summaries[]"));
    bind_real_or_null(sum, 5, need(s, "min", "summaries[]"));
    bind_real_or_null(sum, 6, need(s, "max", "summaries[]")).bind(7, int_of(s, "count", "summaries[]"));
    sum.bind(8, text_of(s, "goal", "summaries[]")).run();
  }

  Stmt art(*db, "INSERT INTO artifacts(name, type) VALUES(?, ?)");
  Stmt ver(*db, "INSERT INTO artifact_versions(artifact_id, version, digest, size, metadata, run_uid, created_at) "
                "VALUES(?, ?, ?, ?, ?, ?, ?)");
  Stmt file(*db, "INSERT INTO artifact_files(version_id, path, sha256, size) VALUES(?, ?, ?, ?)");
  Stmt alias(*db, "INSERT INTO artifact_aliases(artifact_id, alias, version_id) "
                  "SELECT ?1, ?2, id FROM artifact_versions WHERE artifact_id = ?1 AND version = ?3");
  for (const json& a : array_of(seed, "artifacts", "seed")) {
    const std::string where = "artifacts[" + text_of(a, "name", "artifacts[]") + "]";
    art.bind(1, text_of(a, "name", where)).bind(2, text_of(a, "type", where)).run();
    const int64_t artifact_id = sqlite3_last_insert_rowid(db->handle());
    for (const json& v : array_of(a, "versions", where)) {
      const json& run_uid = need(v, "run_uid", where + ".versions[]");
      ver.bind(1, artifact_id).bind(2, int_of(v, "version", where + ".versions[]")).bind(3, text_of(v, "digest", where + ".versions[]"));
      ver.bind(4, int_of(v, "size", where + ".versions[]")).bind(5, util::dump_json(need(v, "metadata", where + ".versions[]")));
      if (run_uid.is_string())
        ver.bind(6, run_uid.get<std::string>());
      else
        ver.bind_null(6);
      ver.bind(7, real_of(v, "created_at", where + ".versions[]")).run();
      const int64_t version_id = sqlite3_last_insert_rowid(db->handle());
      for (const json& f : array_of(v, "files", where + ".versions[]"))
        file.bind(1, version_id).bind(2, text_of(f, "path", where + ".files[]")).bind(3, text_of(f, "sha256", where + ".files[]"))
            .bind(4, int_of(f, "size", where + ".files[]")).run();
    }
    const json& aliases = need(a, "aliases", where);
    if (!aliases.is_object()) throw std::invalid_argument("run seed: " + where + ".aliases is not an object");
    for (const auto& [name, version] : aliases.items()) {
      if (!version.is_number_integer()) throw std::invalid_argument("run seed: " + where + ".aliases." + name + " is not an integer");
      alias.bind(1, artifact_id).bind(2, name).bind(3, version.get<int64_t>()).run();
    }
  }
  tx.commit();
  return run_id;
}

}  // namespace tracker
