#include "tracker/events/events.h"

#include <cmath>
#include <set>
#include <type_traits>

#include "common/util/json.h"
#include "common/util/sha256.h"

namespace tracker {
namespace {

using nlohmann::json;

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

// --- check -------------------------------------------------------------------------------------

void check_name(const char* what, const std::string& name, bool allow_empty = false) {
  if ((!allow_empty && name.empty()) || name.size() > kMaxNameBytes)
    throw std::invalid_argument(std::string(what) + " must be 1.." + std::to_string(kMaxNameBytes) + " bytes, got " +
                                std::to_string(name.size()));
}

// Artifact names, types and aliases also appear in "NAME:ALIAS" references.
void check_artifact_name(const char* what, const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes || name.find(':') != std::string::npos)
    throw std::invalid_argument(std::string(what) + " '" + util::cut(name, util::kQuoteChars) + "' must be 1.." +
                                std::to_string(kMaxNameBytes) + " bytes without ':'");
}

void check_json_size(const std::string& what, const json& j) {
  const std::string text = util::dump_json(j);
  if (text.size() > kMaxJsonBytes)
    throw std::invalid_argument(what + " is " + std::to_string(text.size()) + " bytes of JSON; the limit is " +
                                std::to_string(kMaxJsonBytes));
}

void check_body(const RunCreated& e) {
  check_name("project name", e.project);
  check_name("run name", e.name, /*allow_empty=*/true);
  check_name("group name", e.group, true);
  for (const auto& tag : e.tags) check_name("tag", tag);
  if (!e.config.is_object()) throw std::invalid_argument("run config must be a JSON object");
  check_json_size("run config", e.config);
  if (e.notes.size() > kMaxJsonBytes) throw std::invalid_argument("run notes are over the size limit");
}
void check_body(const RunResumed& e) {
  if (e.from_step < -1) throw std::invalid_argument("from_step must be ≥ -1");
}
void check_body(const RunFinished& e) {
  if (!is_final_status(e.status))
    throw std::invalid_argument("'" + e.status +
                                "' is not a final status (finished, failed, stopped, crashed, early-stopped, cancelled)");
}
void check_body(const Metrics& e) {
  for (const auto& [key, value] : e.values)
    if (key.empty() || key.size() > kMaxNameBytes)
      throw std::invalid_argument("metric key '" + key.substr(0, 64) + "' must be 1.." + std::to_string(kMaxNameBytes) +
                                  " bytes");
}
void check_body(const MetricGoal& e) {
  check_name("metric key", e.key);
  if (e.goal != "min" && e.goal != "max" && !e.goal.empty()) throw std::invalid_argument("metric goal must be min, max or \"\"");
}
void check_body(const Table& e) {
  check_name("table name", e.name);
  if (!e.columns.is_array() || e.columns.empty())
    throw std::invalid_argument("table '" + e.name + "': columns must be a non-empty array");
  for (const auto& c : e.columns)
    if (!c.is_string()) throw std::invalid_argument("table '" + e.name + "': column names must be strings");
  if (!e.rows.is_array()) throw std::invalid_argument("table '" + e.name + "': rows must be an array");
  for (size_t i = 0; i < e.rows.size(); ++i)
    if (!e.rows[i].is_array() || e.rows[i].size() != e.columns.size())
      throw std::invalid_argument("table '" + e.name + "': row " + std::to_string(i) + " does not have " +
                                  std::to_string(e.columns.size()) + " values");
  check_json_size("table '" + e.name + "'", e.rows);
}
void check_body(const Histogram& e) {
  check_name("histogram key", e.key);
  if (!(std::isfinite(e.lo) && std::isfinite(e.hi) && e.lo <= e.hi))
    throw std::invalid_argument("histogram range must be finite, lo <= hi");
  if (e.counts.size() > 4096) throw std::invalid_argument("a histogram has at most 4096 bins");
  for (int64_t c : e.counts)
    if (c < 0) throw std::invalid_argument("histogram counts must be ≥ 0");
}
void check_body(const ConsoleLine& e) {
  if (e.stream != "stdout" && e.stream != "stderr") throw std::invalid_argument("console stream must be stdout or stderr");
  if (e.line.size() > kMaxLineBytes) throw std::invalid_argument("a console line is over " + std::to_string(kMaxLineBytes) + " bytes");
}
void check_body(const ConfigSet& e) {
  if (!e.config.is_object()) throw std::invalid_argument("run config must be a JSON object");
  check_json_size("run config", e.config);
}
void check_body(const Heartbeat&) {}
void check_body(const ArtifactLogged& e) {
  check_artifact_name("artifact name", e.name);
  check_artifact_name("artifact type", e.type);
  for (const auto& a : e.aliases) check_artifact_name("alias", a);
  if (!e.metadata.is_object()) throw std::invalid_argument("artifact metadata must be a JSON object");
  check_json_size("artifact metadata", e.metadata);
  if (e.files.empty()) throw std::invalid_argument("artifact '" + e.name + "' has no files");
  for (size_t i = 0; i < e.files.size(); ++i) {
    const ArtifactFile& f = e.files[i];
    if (f.path.empty() || f.path.front() == '/' || f.path.find("..") != std::string::npos || f.path.size() > 4096)
      throw std::invalid_argument("artifact '" + e.name + "': refusing file path '" + f.path.substr(0, 64) + "'");
    if (i > 0 && !(e.files[i - 1].path < f.path))
      throw std::invalid_argument("artifact '" + e.name + "': files must be in path order, each once");
    if (!util::is_sha256_hex(f.sha256))
      throw std::invalid_argument("artifact '" + e.name + "': file " + f.path + " has no valid sha256");
    if (f.size < 0) throw std::invalid_argument("artifact '" + e.name + "': file " + f.path + " has a negative size");
  }
}
void check_ref(const std::string& ref) {
  if (ref.empty() || ref.size() > 2 * kMaxNameBytes + 1) throw std::invalid_argument("artifact reference '" + ref.substr(0, 64) + "' is not NAME[:ALIAS|:vN]");
}
void check_body(const ArtifactUsed& e) { check_ref(e.ref); }
void check_body(const ArtifactAlias& e) {
  check_ref(e.ref);
  check_artifact_name("alias", e.alias);
}
void check_body(const ArtifactDeleted& e) { check_ref(e.ref); }

// --- JSON --------------------------------------------------------------------------------------

json number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  return v;
}

// Reads the fields of one JSON object, each once and with its type, and refuses leftovers.
class Fields {
 public:
  Fields(const json& j, std::string type) : j_(j), type_(std::move(type)) {}

  const json& any(const char* key) {
    auto it = j_.find(key);
    if (it == j_.end()) fail(key, "is missing");
    used_.insert(key);
    return *it;
  }
  std::string text(const char* key) {
    const json& v = any(key);
    if (!v.is_string()) fail(key, "must be a string");
    return v.get<std::string>();
  }
  int64_t integer(const char* key) {
    const json& v = any(key);
    if (!v.is_number_integer()) fail(key, "must be an integer");
    return v.get<int64_t>();
  }
  double real(const char* key) {
    const json& v = any(key);
    if (!v.is_number()) fail(key, "must be a number");
    return v.get<double>();
  }
  // A number, or "nan", "inf", "-inf".
  static bool extended_number(const json& v, double* out) {
    if (v.is_number()) return *out = v.get<double>(), true;
    if (v == "nan") return *out = NAN, true;
    if (v == "inf") return *out = INFINITY, true;
    if (v == "-inf") return *out = -INFINITY, true;
    return false;
  }
  const json& object(const char* key) {
    const json& v = any(key);
    if (!v.is_object()) fail(key, "must be an object");
    return v;
  }
  const json& array(const char* key) {
    const json& v = any(key);
    if (!v.is_array()) fail(key, "must be an array");
    return v;
  }
  std::vector<std::string> strings(const char* key) {
    std::vector<std::string> out;
    for (const auto& v : array(key)) {
      if (!v.is_string()) fail(key, "must be an array of strings");
      out.push_back(v.get<std::string>());
    }
    return out;
  }
  void done() {
    for (auto it = j_.begin(); it != j_.end(); ++it)
      if (!used_.count(it.key())) fail(it.key(), "is not a field of a " + type_ + " event");
  }
  [[noreturn]] void fail(const std::string& key, const std::string& what) const {
    throw EventError("event " + type_ + ": \"" + key + "\" " + what);
  }

 private:
  const json& j_;
  std::string type_;
  std::set<std::string> used_;
};

EventBody body_from_json(const std::string& type, Fields& f) {
  if (type == "run_created")
    return RunCreated{f.text("project"), f.text("name"), f.text("group"), f.strings("tags"), f.text("notes"),
                      f.object("config"), f.real("wall")};
  if (type == "run_resumed") return RunResumed{f.integer("from_step"), f.real("wall")};
  if (type == "run_finished") return RunFinished{f.text("status"), f.real("wall")};
  if (type == "metrics") {
    Metrics m{f.integer("step"), f.real("wall"), {}};
    const json& values = f.object("values");
    for (auto it = values.begin(); it != values.end(); ++it) {
      double v;
      if (!Fields::extended_number(it.value(), &v)) f.fail("values." + it.key(), "must be a number, \"nan\", \"inf\" or \"-inf\"");
      m.values.emplace_back(it.key(), v);
    }
    return m;
  }
  if (type == "metric_goal") return MetricGoal{f.text("key"), f.text("goal")};
  if (type == "table") return Table{f.text("name"), f.integer("step"), f.array("columns"), f.array("rows")};
  if (type == "histogram") {
    Histogram h{f.text("key"), f.integer("step"), f.real("lo"), f.real("hi"), {}};
    for (const auto& c : f.array("counts")) {
      if (!c.is_number_integer()) f.fail("counts", "must be an array of integers");
      h.counts.push_back(c.get<int64_t>());
    }
    return h;
  }
  if (type == "console") return ConsoleLine{f.text("stream"), f.text("line"), f.real("wall")};
  if (type == "config") return ConfigSet{f.object("config")};
  if (type == "heartbeat") return Heartbeat{f.real("wall")};
  if (type == "artifact_logged") {
    ArtifactLogged a{f.text("name"), f.text("artifact_type"), f.object("metadata"), f.strings("aliases"), {}, 0};
    for (const auto& file : f.array("files")) {
      if (!file.is_object()) f.fail("files", "must be an array of {path, sha256, size} objects");
      Fields ff(file, "artifact_logged file");
      a.files.push_back({ff.text("path"), ff.text("sha256"), ff.integer("size")});
      ff.done();
    }
    a.wall = f.real("wall");
    return a;
  }
  if (type == "artifact_used") return ArtifactUsed{f.text("ref")};
  if (type == "artifact_alias") return ArtifactAlias{f.text("ref"), f.text("alias")};
  if (type == "artifact_deleted") return ArtifactDeleted{f.text("ref")};
  throw EventError("unknown event type \"" + type.substr(0, 64) + "\"");
}

}  // namespace

bool is_final_status(const std::string& s) {
  return s == "finished" || s == "failed" || s == "stopped" || s == "crashed" || s == "early-stopped" || s == "cancelled";
}

const char* type_name(const EventBody& body) {
  static const char* const kNames[] = {"run_created", "run_resumed", "run_finished", "metrics",        "metric_goal",
                                       "table",       "histogram",   "console",      "config",         "heartbeat",
                                       "artifact_logged", "artifact_used", "artifact_alias", "artifact_deleted"};
  static_assert(std::size(kNames) == std::variant_size_v<EventBody>, "a name for every event type");
  return kNames[body.index()];
}

void check(const Event& event) {
  if (event.run.size() > kMaxNameBytes) throw std::invalid_argument("run uid is over " + std::to_string(kMaxNameBytes) + " bytes");
  // Artifacts may be logged, re-aliased and deleted by no run (`i3lab artifact delete`, sync).
  const bool runless = std::holds_alternative<ArtifactLogged>(event.body) ||
                       std::holds_alternative<ArtifactAlias>(event.body) || std::holds_alternative<ArtifactDeleted>(event.body);
  if (event.run.empty() && !runless)
    throw std::invalid_argument(std::string("a ") + type_name(event.body) + " event needs its run's uid");
  std::visit([](const auto& body) { check_body(body); }, event.body);
}

json to_json(const Event& event) {
  json j = {{"run", event.run}, {"seq", event.seq}, {"type", type_name(event.body)}};
  std::visit(Overloaded{
                 [&](const RunCreated& e) {
                   j.update({{"project", e.project}, {"name", e.name}, {"group", e.group}, {"tags", e.tags},
                             {"notes", e.notes}, {"config", e.config}, {"wall", e.wall}});
                 },
                 [&](const RunResumed& e) { j.update({{"from_step", e.from_step}, {"wall", e.wall}}); },
                 [&](const RunFinished& e) { j.update({{"status", e.status}, {"wall", e.wall}}); },
                 [&](const Metrics& e) {
                   json values = json::object();
                   for (const auto& [key, value] : e.values) values[key] = number(value);
                   j.update({{"step", e.step}, {"wall", e.wall}, {"values", values}});
                 },
                 [&](const MetricGoal& e) { j.update({{"key", e.key}, {"goal", e.goal}}); },
                 [&](const Table& e) { j.update({{"name", e.name}, {"step", e.step}, {"columns", e.columns}, {"rows", e.rows}}); },
                 [&](const Histogram& e) {
                   j.update({{"key", e.key}, {"step", e.step}, {"lo", e.lo}, {"hi", e.hi}, {"counts", e.counts}});
                 },
                 [&](const ConsoleLine& e) { j.update({{"stream", e.stream}, {"line", e.line}, {"wall", e.wall}}); },
                 [&](const ConfigSet& e) { j["config"] = e.config; },
                 [&](const Heartbeat& e) { j["wall"] = e.wall; },
                 [&](const ArtifactLogged& e) {
                   json files = json::array();
                   for (const auto& f : e.files) files.push_back({{"path", f.path}, {"sha256", f.sha256}, {"size", f.size}});
                   j.update({{"name", e.name}, {"artifact_type", e.type}, {"metadata", e.metadata}, {"aliases", e.aliases},
                             {"files", files}, {"wall", e.wall}});
                 },
                 [&](const ArtifactUsed& e) { j["ref"] = e.ref; },
                 [&](const ArtifactAlias& e) { j.update({{"ref", e.ref}, {"alias", e.alias}}); },
                 [&](const ArtifactDeleted& e) { j["ref"] = e.ref; },
             },
             event.body);
  return j;
}

Event event_from_json(const json& j) {
  if (!j.is_object()) throw EventError("an event must be a JSON object");
  auto type_it = j.find("type");
  if (type_it == j.end() || !type_it->is_string()) throw EventError("an event needs a \"type\" string");
  const std::string type = type_it->get<std::string>();
  Fields f(j, type);
  f.any("type");
  Event e;
  e.run = f.text("run");
  const json& seq = f.any("seq");
  if (!seq.is_number_unsigned()) f.fail("seq", "must be an integer ≥ 0");
  e.seq = seq.get<uint64_t>();
  e.body = body_from_json(type, f);
  f.done();
  try {
    check(e);
  } catch (const std::invalid_argument& bad) {
    throw EventError("event " + type + ": " + bad.what());
  }
  return e;
}

}  // namespace tracker
