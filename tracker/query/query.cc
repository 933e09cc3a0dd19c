#include "tracker/query/query.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <map>
#include <optional>

#include "common/util/json.h"
#include "tracker/db/schema.h"

namespace tracker {
namespace {

double column_or_nan(const Stmt& s, int col) { return s.is_null(col) ? NAN : s.real(col); }

nlohmann::json number_or_null(double v) { return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(); }

// The fields of a run a PATH may name besides config.… and summary.….
constexpr const char* kRunFields[] = {"id",      "uid",        "name",         "status",     "group",
                                      "project", "created_at", "heartbeat_at", "finished_at"};
constexpr const char* kPathForms =
    "a PATH is config.KEY[.KEY...], summary.KEY[.min|.max|.best|.last], or one of id, uid, name, status, group, "
    "project, created_at, heartbeat_at, finished_at";

// What is wrong with `path` as a PATH of RunFilter::where; "" if nothing.
std::string path_problem(const std::string& path) {
  if (path.rfind("config.", 0) == 0) {
    const std::string keys = path.substr(7);
    if (keys.empty() || keys.front() == '.' || keys.back() == '.' || keys.find("..") != std::string::npos)
      return "PATH '" + util::cut(path) + "' has an empty config key; " + kPathForms;
    return "";
  }
  if (path.rfind("summary.", 0) == 0) return path.size() > 8 ? "" : "PATH 'summary.' names no metric; " + std::string(kPathForms);
  for (const char* field : kRunFields)
    if (path == field) return "";
  return (path.empty() ? std::string("no PATH") : "unknown PATH '" + util::cut(path) + "'") + "; " + kPathForms;
}

// "config.optimizer.lr", "summary.val/loss[.min|.max|.best|.last]", "name", "status", ...;
// null when the run has no such value. REQUIRES: path_problem(path) is "".
nlohmann::json value_at(const RunRecord& r, const std::string& path) {
  if (path == "id") return r.id;
  if (path == "uid") return r.uid;
  if (path == "name") return r.name;
  if (path == "status") return r.status;
  if (path == "group") return r.group;
  if (path == "project") return r.project;
  if (path == "created_at") return r.created_at;
  if (path == "heartbeat_at") return r.heartbeat_at;
  if (path == "finished_at") return r.finished_at > 0 ? nlohmann::json(r.finished_at) : nlohmann::json();
  if (path.rfind("config.", 0) == 0) {
    const nlohmann::json* node = &r.config;
    size_t start = 7;
    while (true) {
      size_t dot = path.find('.', start);
      std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      if (!node->is_object() || !node->contains(part)) return nullptr;
      node = &(*node)[part];
      if (dot == std::string::npos) return *node;
      start = dot + 1;
    }
  }
  // summary.
  std::string key = path.substr(8), field = "last";
  for (const char* f : {"min", "max", "best", "last"}) {
    const std::string suffix = std::string(".") + f;
    if (key.size() > suffix.size() && key.compare(key.size() - suffix.size(), suffix.size(), suffix) == 0 &&
        !r.summary.contains(key)) {
      key.resize(key.size() - suffix.size());
      field = f;
      break;
    }
  }
  if (!r.summary.contains(key)) return nullptr;
  return r.summary[key].value(field, nlohmann::json());
}

// For sorting: numbers as numbers, before anything else, which compares as (JSON) text. A
// total order (std::stable_sort needs one): comparing 2, 10 and "1x" by text where one side is
// not a number would put 2 < 10 < "1x" < 2.
int compare(const nlohmann::json& a, const nlohmann::json& b) {
  if (a.is_number() && b.is_number()) {
    double x = a.get<double>(), y = b.get<double>();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_number() != b.is_number()) return a.is_number() ? -1 : 1;
  std::string x = a.is_string() ? a.get<std::string>() : a.dump(), y = b.is_string() ? b.get<std::string>() : b.dump();
  return x.compare(y) < 0 ? -1 : x == y ? 0 : 1;
}

bool matches(const RunRecord& r, const RunCondition& c) {
  using Op = RunCondition::Op;
  const nlohmann::json have = value_at(r, c.path);
  if (have.is_null()) return false;
  if (c.op == Op::kEq || c.op == Op::kNe) {
    const bool equal = have.is_number() && c.number ? have.get<double>() == *c.number
                                                    : (have.is_string() ? have.get<std::string>() : have.dump()) == c.text;
    return equal == (c.op == Op::kEq);
  }
  if (!have.is_number()) return false;
  const double x = have.get<double>(), y = *c.number;
  return c.op == Op::kLt ? x < y : c.op == Op::kLe ? x <= y : c.op == Op::kGt ? x > y : x >= y;
}

// The whole of `text` as a number ("1e-3", "-2", "inf"), or nothing (NaN is nothing too).
std::optional<double> parse_number(const std::string& text) {
  double number;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end != text.data() + text.size() || std::isnan(number)) return std::nullopt;
  return number;
}

std::string trim(const std::string& text) {
  const size_t first = text.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return text.substr(first, text.find_last_not_of(" \t") - first + 1);
}

// Stored JSON text (config, tags): the value, or null and `error` set when it is not JSON
// (util::try_parse_json bounds the nesting) or `is_kind` refuses it.
nlohmann::json read_stored(const std::string& text, bool (*is_kind)(const nlohmann::json&), const std::string& what,
                           const std::string& kind, std::string* error) {
  std::optional<nlohmann::json> value = util::try_parse_json(text);
  if (value && is_kind(*value)) return std::move(*value);
  *error = "stored " + what + (value ? " is not " + kind : " is not valid JSON");
  return nullptr;
}

bool is_object(const nlohmann::json& j) { return j.is_object(); }

bool is_string_array(const nlohmann::json& j) {
  return j.is_array() && std::all_of(j.begin(), j.end(), [](const nlohmann::json& e) { return e.is_string(); });
}

std::string format_double(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, end);
}

}  // namespace

void check_run_path(const std::string& path) {
  const std::string problem = path_problem(path);
  if (!problem.empty()) throw std::invalid_argument(problem);
}

RunCondition parse_run_condition(const std::string& condition) {
  using Op = RunCondition::Op;
  const std::string label = "runs filter '" + util::cut(condition) + "': ";
  const size_t at = condition.find_first_of("=!<>");
  if (at == std::string::npos)
    throw std::invalid_argument(label + "no operator; write PATH OP VALUE with OP one of = != < <= > >=");
  // The operator is every operator character in a row, so "=>" or "==" is refused rather
  // than read as "=" and a value ">…".
  const size_t end = std::min(condition.find_first_not_of("=!<>", at), condition.size());
  const std::string op_text = condition.substr(at, end - at);
  static const std::pair<const char*, Op> kOps[] = {{"=", Op::kEq},  {"!=", Op::kNe}, {"<", Op::kLt},
                                                    {"<=", Op::kLe}, {">", Op::kGt},  {">=", Op::kGe}};
  RunCondition out;
  const auto op = std::find_if(std::begin(kOps), std::end(kOps), [&](const auto& o) { return op_text == o.first; });
  if (op == std::end(kOps))
    throw std::invalid_argument(label + "'" + util::cut(op_text) +
                                "' is not an operator (= != < <= > >=); a VALUE that starts with one of = ! < > is "
                                "written as a JSON string, e.g. name=\"<x>\"");
  out.op = op->second;
  out.path = trim(condition.substr(0, at));
  const std::string problem = path_problem(out.path);
  if (!problem.empty()) throw std::invalid_argument(label + problem);
  const std::string value = trim(condition.substr(end));
  if (value.empty())
    throw std::invalid_argument(label + "no VALUE after '" + op_text + "' (empty text is written \"\")");
  if (value.front() == '"') {
    std::optional<nlohmann::json> quoted = util::try_parse_json(value);
    if (!quoted || !quoted->is_string())
      throw std::invalid_argument(label + "VALUE " + util::cut(value) + " is not a JSON string (\"…\" with \\ escapes)");
    out.text = quoted->get<std::string>();
  } else {
    out.text = value;
    out.number = parse_number(value);
  }
  if (out.op != Op::kEq && out.op != Op::kNe && !out.number)
    throw std::invalid_argument(label + "'" + op_text + "' needs a number on the right, got " + util::cut(value) +
                                " (= and != compare text)");
  return out;
}

namespace {

// The conditions of `filter`, once; throws for them or for its sort path.
std::vector<RunCondition> parse_filter(const RunFilter& filter) {
  std::vector<RunCondition> out;
  for (const auto& c : filter.where) out.push_back(parse_run_condition(c));
  const std::string problem = path_problem(filter.sort_by);
  if (!problem.empty()) throw std::invalid_argument("sort: " + problem);
  return out;
}

}  // namespace

void check_run_filter(const RunFilter& filter) { parse_filter(filter); }

nlohmann::json RunRecord::to_json() const {
  nlohmann::json out = {{"id", id},         {"uid", uid},         {"project", project},       {"name", name},
                        {"group", group},   {"tags", tags},       {"notes", notes},           {"status", status},
                        {"config", config}, {"summary", summary}, {"created_at", created_at}, {"heartbeat_at", heartbeat_at},
                        {"finished_at", finished_at > 0 ? nlohmann::json(finished_at) : nlohmann::json()}};
  if (!config_error.empty()) out["config_error"] = config_error;
  if (!tags_error.empty()) out["tags_error"] = tags_error;
  return out;
}

Query::Query(const std::string& path) : db_(open_database(path, OpenMode::kReadOnly)) {}

std::vector<RunRecord> Query::load(const RunFilter& filter, int64_t only_id) {
  // One run through its primary key; an "id = 0 OR r.id = id" condition would scan the table.
  const std::string runs = R"SQL(
    SELECT r.id, r.uid, p.name, r.name, r.group_name, r.tags, r.notes, r.config, r.status, r.created_at,
           r.heartbeat_at, coalesce(r.finished_at, 0)
    FROM runs r JOIN projects p ON p.id = r.project_id
    WHERE (?1 = '' OR p.name = ?1) AND (?2 = '' OR r.status = ?2))SQL";
  Stmt s(*db_, (only_id ? runs + " AND r.id = ?3" : runs + " ORDER BY r.id").c_str());
  s.bind(1, filter.project).bind(2, filter.status);
  if (only_id) s.bind(3, only_id);
  std::vector<RunRecord> out;
  std::map<int64_t, size_t> index;
  while (s.step()) {
    RunRecord r;
    r.id = s.int64(0);
    r.uid = s.text(1);
    r.project = s.text(2);
    r.name = s.text(3);
    r.group = s.text(4);
    r.tags = read_stored(s.text(5), is_string_array, "tags", "a JSON array of strings", &r.tags_error);
    r.notes = s.text(6);
    r.config = read_stored(s.text(7), is_object, "config", "a JSON object", &r.config_error);
    r.status = s.text(8);
    r.created_at = s.real(9);
    r.heartbeat_at = s.real(10);
    r.finished_at = s.real(11);
    r.summary = nlohmann::json::object();
    if (!filter.tag.empty() && (!r.tags.is_array() || std::find(r.tags.begin(), r.tags.end(), filter.tag) == r.tags.end()))
      continue;
    index[r.id] = out.size();
    out.push_back(std::move(r));
  }
  // Summaries: of one run through their key, of all runs in one pass over the table.
  const std::string summaries = "SELECT s.run_id, k.name, s.last, s.last_step, s.min, s.max, s.count, s.goal "
                                "FROM summaries s JOIN metric_keys k ON k.id = s.key_id";
  Stmt sum(*db_, (only_id ? summaries + " WHERE s.run_id = ?1" : summaries).c_str());
  if (only_id) sum.bind(1, only_id);
  while (sum.step()) {
    auto it = index.find(sum.int64(0));
    if (it == index.end()) continue;
    const double mn = column_or_nan(sum, 4), mx = column_or_nan(sum, 5);
    const std::string goal = sum.text(7);
    nlohmann::json entry = {{"last", number_or_null(column_or_nan(sum, 2))},
                            {"last_step", sum.int64(3)},
                            {"min", number_or_null(mn)},
                            {"max", number_or_null(mx)},
                            {"count", sum.int64(6)},
                            {"goal", goal}};
    if (!goal.empty()) entry["best"] = number_or_null(goal == "min" ? mn : mx);
    out[it->second].summary[sum.text(1)] = entry;
  }
  return out;
}

std::vector<RunRecord> Query::runs(const RunFilter& filter) {
  const std::vector<RunCondition> conditions = parse_filter(filter);
  std::vector<RunRecord> out = load(filter, 0);
  std::vector<RunRecord> kept;
  for (auto& r : out)
    if (std::all_of(conditions.begin(), conditions.end(), [&](const RunCondition& c) { return matches(r, c); }))
      kept.push_back(std::move(r));
  // Each run's sort value is read once (a value is a JSON copy), then the runs are ordered by it.
  std::vector<std::pair<nlohmann::json, size_t>> order;
  order.reserve(kept.size());
  for (size_t i = 0; i < kept.size(); ++i) order.emplace_back(value_at(kept[i], filter.sort_by), i);
  std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
    const nlohmann::json &x = a.first, &y = b.first;
    if (x.is_null() != y.is_null()) return y.is_null();  // runs without the value last
    if (x.is_null()) return false;
    const int c = compare(x, y);
    return filter.descending ? c > 0 : c < 0;
  });
  if (filter.limit && order.size() > filter.limit) order.resize(filter.limit);
  std::vector<RunRecord> sorted;
  sorted.reserve(order.size());
  for (const auto& [value, i] : order) sorted.push_back(std::move(kept[i]));
  return sorted;
}

bool Query::has_run(int64_t id) {
  Stmt s(*db_, "SELECT 1 FROM runs WHERE id = ?");
  s.bind(1, id);
  return s.step();
}

RunRecord Query::run(int64_t id) {
  auto found = load({}, id);
  if (!found.empty()) return found.front();
  throw NotFound("no run with id " + std::to_string(id) + " in " + db_->path());
}

std::vector<std::string> Query::metric_keys(int64_t run_id) {
  Stmt s(*db_, "SELECT k.name FROM summaries s JOIN metric_keys k ON k.id = s.key_id WHERE s.run_id = ? AND s.count > 0 ORDER BY k.name");
  s.bind(1, run_id);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<Bucket> Query::points(int64_t run_id, const std::string& key, int64_t x0, int64_t x1) {
  Stmt s(*db_, "SELECT m.step, m.value, m.wall FROM metrics m JOIN metric_keys k ON k.id = m.key_id "
               "WHERE m.run_id = ? AND k.name = ? AND m.step BETWEEN ? AND ? ORDER BY m.step");
  s.bind(1, run_id).bind(2, key).bind(3, x0).bind(4, x1);
  std::vector<Bucket> out;
  while (s.step()) {
    const double v = column_or_nan(s, 1);
    out.push_back({s.int64(0), s.int64(0), v, v, v, s.real(2), 1});
  }
  return out;
}

std::vector<Bucket> Query::series(int64_t run_id, const std::string& key, int64_t x0, int64_t x1, int buckets) {
  if (buckets < 1 || x1 < x0) return {};
  const double span = static_cast<double>(x1) - static_cast<double>(x0) + 1;
  const double per_bucket = span / buckets;
  int64_t width = 1;
  for (int64_t w : kTierWidths)
    if (w <= per_bucket) width = w;
  std::vector<Bucket> rows;
  if (width == 1) {
    rows = points(run_id, key, x0, x1);
  } else {
    // Whole tier buckets inside [x0, x1]; the partial ones at either edge from raw points.
    const int64_t first_full = bucket_of(x0 + width - 1, width), last_full = bucket_of(x1 + 1, width) - 1;
    rows = points(run_id, key, x0, std::min(x1, first_full * width - 1));
    Stmt s(*db_, "SELECT t.bucket, t.min, t.max, t.last, t.last_step, t.last_wall, t.count FROM metric_tiers t "
                 "JOIN metric_keys k ON k.id = t.key_id WHERE t.run_id = ? AND k.name = ? AND t.width = ? "
                 "AND t.bucket BETWEEN ? AND ? ORDER BY t.bucket");
    s.bind(1, run_id).bind(2, key).bind(3, width).bind(4, first_full).bind(5, last_full);
    while (s.step())
      rows.push_back({s.int64(0) * width, s.int64(4), column_or_nan(s, 1), column_or_nan(s, 2), column_or_nan(s, 3),
                      s.real(5), s.int64(6)});
    if (last_full >= first_full) {
      auto tail = points(run_id, key, std::max(x0, (last_full + 1) * width), x1);
      rows.insert(rows.end(), tail.begin(), tail.end());
    }
  }
  // Merge rows into output buckets by where each row starts.
  std::vector<Bucket> out;
  int64_t current = -1;
  for (const Bucket& r : rows) {
    const int64_t index = std::min<int64_t>(buckets - 1, static_cast<int64_t>((r.first_step - x0) / per_bucket));
    if (index != current) {
      out.push_back(r);
      current = index;
      continue;
    }
    Bucket& b = out.back();
    if (!std::isnan(r.min)) b.min = std::isnan(b.min) ? r.min : std::min(b.min, r.min);
    if (!std::isnan(r.max)) b.max = std::isnan(b.max) ? r.max : std::max(b.max, r.max);
    if (r.last_step >= b.last_step) b.last = r.last, b.last_step = r.last_step, b.last_wall = r.last_wall;
    b.count += r.count;
  }
  return out;
}

namespace {

// One series' key id and first and last step: nothing if it has no points.
struct SeriesSpan {
  int64_t key_id, first, last;
};
std::optional<SeriesSpan> series_span(Db& db, int64_t run_id, const std::string& key) {
  Stmt s(db, "SELECT k.id, (SELECT min(step) FROM metrics m WHERE m.run_id = ?1 AND m.key_id = k.id), s.last_step "
             "FROM metric_keys k JOIN summaries s ON s.key_id = k.id AND s.run_id = ?1 WHERE k.name = ?2 AND s.count > 0");
  s.bind(1, run_id).bind(2, key);
  if (!s.step() || s.is_null(1)) return std::nullopt;
  return SeriesSpan{s.int64(0), s.int64(1), s.int64(2)};
}

}  // namespace

std::optional<std::pair<int64_t, int64_t>> Query::step_range(int64_t run_id, const std::string& key) {
  const auto span = series_span(*db_, run_id, key);
  if (!span) return std::nullopt;
  return std::make_pair(span->first, span->last);
}

std::optional<std::pair<int64_t, int64_t>> Query::steps_between(int64_t run_id, const std::string& key, double w0,
                                                                double w1) {
  const auto span = series_span(*db_, run_id, key);
  if (!span) return std::nullopt;
  const int64_t key_id = span->key_id, min_step = span->first, max_step = span->last;
  Stmt tier(*db_, "SELECT min(bucket) FROM metric_tiers WHERE run_id = ? AND key_id = ? AND width = ? "
                  "AND bucket BETWEEN ? AND ? AND last_wall >= ?");
  Stmt raw(*db_, "SELECT min(step) FROM metrics WHERE run_id = ? AND key_id = ? AND step BETWEEN ? AND ? AND wall >= ?");
  // The first step whose wall time is >= w: the first coarse bucket whose last point reaches w
  // holds it; narrow down through the finer tiers, then look at the points.
  auto first_step_at = [&](double w) -> std::optional<int64_t> {
    int64_t lo = min_step, hi = max_step;
    for (size_t i = std::size(kTierWidths); i-- > 0;) {
      const int64_t width = kTierWidths[i];
      tier.bind(1, run_id).bind(2, key_id).bind(3, width).bind(4, bucket_of(lo, width)).bind(5, bucket_of(hi, width)).bind(6, w);
      const bool found = tier.step() && !tier.is_null(0);
      const int64_t bucket = found ? tier.int64(0) : 0;
      tier.reset();
      if (!found) return std::nullopt;
      lo = std::max(lo, bucket * width);
      hi = std::min(hi, bucket * width + width - 1);
    }
    raw.bind(1, run_id).bind(2, key_id).bind(3, lo).bind(4, hi).bind(5, w);
    const bool found = raw.step() && !raw.is_null(0);
    const int64_t step = found ? raw.int64(0) : 0;
    raw.reset();
    return found ? std::optional<int64_t>(step) : std::nullopt;
  };
  const auto first = first_step_at(w0);
  if (!first) return std::nullopt;
  // The last step with wall <= w1 is the last point before the first step past w1.
  int64_t last = max_step;
  if (const auto past = first_step_at(std::nextafter(w1, INFINITY))) {
    Stmt before(*db_, "SELECT max(step) FROM metrics WHERE run_id = ? AND key_id = ? AND step < ?");
    before.bind(1, run_id).bind(2, key_id).bind(3, *past);
    if (!before.step() || before.is_null(0)) return std::nullopt;
    last = before.int64(0);
  }
  if (last < *first) return std::nullopt;
  return std::make_pair(*first, last);
}

std::vector<int64_t> Query::table_steps(int64_t run_id, const std::string& name) {
  Stmt s(*db_, "SELECT step FROM run_tables WHERE run_id = ? AND name = ? ORDER BY step");
  s.bind(1, run_id).bind(2, name);
  std::vector<int64_t> out;
  while (s.step()) out.push_back(s.int64(0));
  return out;
}

nlohmann::json Query::table(int64_t run_id, const std::string& name, int64_t step) {
  Stmt s(*db_, "SELECT columns, rows FROM run_tables WHERE run_id = ? AND name = ? AND step = ?");
  s.bind(1, run_id).bind(2, name).bind(3, step);
  if (!s.step()) return nullptr;
  std::optional<nlohmann::json> columns = util::try_parse_json(s.text(0)), rows = util::try_parse_json(s.text(1));
  if (!columns || !rows || !columns->is_array() || !rows->is_array())
    return {{"columns", nullptr}, {"rows", nullptr}, {"error", "stored table is not valid JSON arrays"}};
  return {{"columns", std::move(*columns)}, {"rows", std::move(*rows)}};
}

std::vector<std::string> Query::table_names(int64_t run_id) {
  Stmt s(*db_, "SELECT DISTINCT name FROM run_tables WHERE run_id = ? ORDER BY name");
  s.bind(1, run_id);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

std::vector<std::string> Query::histogram_keys(int64_t run_id) {
  // One primary-key probe per known key, not a pass over every histogram the run logged.
  Stmt s(*db_, "SELECT k.name FROM metric_keys k WHERE EXISTS (SELECT 1 FROM histograms h WHERE h.run_id = ? AND h.key_id = k.id) "
               "ORDER BY k.name");
  s.bind(1, run_id);
  std::vector<std::string> out;
  while (s.step()) out.push_back(s.text(0));
  return out;
}

nlohmann::json Query::histograms(int64_t run_id, const std::string& key, int max_steps) {
  std::vector<int64_t> steps;
  {
    Stmt s(*db_, "SELECT h.step FROM histograms h JOIN metric_keys k ON k.id = h.key_id WHERE h.run_id = ? AND k.name = ? ORDER BY h.step");
    s.bind(1, run_id).bind(2, key);
    while (s.step()) steps.push_back(s.int64(0));
  }
  // Evenly spread: the i-th of max_steps picks steps[i * n / max_steps]; the newest is always in.
  std::vector<int64_t> chosen;
  const size_t n = steps.size(), want = static_cast<size_t>(std::max(1, max_steps));
  if (n <= want) chosen = steps;
  else
    for (size_t i = 0; i < want; ++i) chosen.push_back(steps[i + 1 == want ? n - 1 : i * n / want]);
  Stmt s(*db_, "SELECT h.lo, h.hi, h.counts FROM histograms h JOIN metric_keys k ON k.id = h.key_id "
               "WHERE h.run_id = ? AND k.name = ? AND h.step = ?");
  nlohmann::json out = nlohmann::json::array();
  for (int64_t step : chosen) {
    s.bind(1, run_id).bind(2, key).bind(3, step);
    if (s.step()) {
      std::optional<nlohmann::json> counts = util::try_parse_json(s.text(2));
      bool ok = counts && counts->is_array();
      if (ok)
        for (const auto& c : *counts) ok = ok && c.is_number_integer();
      out.push_back({{"step", step}, {"lo", number_or_null(s.real(0))}, {"hi", number_or_null(s.real(1))},
                     {"counts", ok ? std::move(*counts) : nlohmann::json::array()}});
    }
    s.reset();
  }
  return out;
}

int64_t Query::data_version() {
  Stmt s(*db_, "PRAGMA data_version");
  return s.step() ? s.int64(0) : 0;
}

std::string Query::run_version(int64_t id) {
  Stmt s(*db_, "SELECT event_seq, status FROM runs WHERE id = ?");
  s.bind(1, id);
  return s.step() ? std::to_string(s.int64(0)) + " " + s.text(1) : "";
}

std::string Query::runs_version() {
  Stmt s(*db_, "SELECT count(*), coalesce(max(id), 0), total(event_seq), total(coalesce(finished_at, 0)) FROM runs");
  if (!s.step()) return "";
  return std::to_string(s.int64(0)) + " " + std::to_string(s.int64(1)) + " " + format_double(s.real(2)) + " " +
         format_double(s.real(3));
}

std::string Query::jobs_version() {
  // How many jobs are in each status (through jobs_by_status), so a requeue (assigned or running
  // back to queued) shows, plus what changes within a status.
  Stmt s(*db_, "SELECT (SELECT group_concat(status || ':' || n, ' ') FROM (SELECT status, count(*) AS n FROM jobs GROUP BY status)), "
               "coalesce(max(id), 0), total(attempt), total(restarts), total(not_before), total(coalesce(started_at, 0)), "
               "total(coalesce(finished_at, 0)), total(cancel_requested) FROM jobs");
  if (!s.step()) return "";
  std::string out = s.is_null(0) ? "" : s.text(0);
  out += " " + std::to_string(s.int64(1));
  for (int i = 2; i < 8; ++i) out += " " + format_double(s.real(i));
  return out;
}

std::string Query::workers_version() {
  Stmt s(*db_, "SELECT group_concat(id || ':' || status, ' ') FROM (SELECT id, status FROM workers ORDER BY id)");
  return s.step() && !s.is_null(0) ? s.text(0) : "";
}

nlohmann::json Query::projects() {
  Stmt s(*db_, "SELECT p.name, count(r.id) FROM projects p LEFT JOIN runs r ON r.project_id = p.id GROUP BY p.id ORDER BY p.name");
  nlohmann::json out = nlohmann::json::array();
  while (s.step()) out.push_back({{"name", s.text(0)}, {"runs", s.int64(1)}});
  return out;
}

nlohmann::json Query::console(int64_t run_id, int64_t after_seq, int64_t limit) {
  Stmt s(*db_, "SELECT seq, wall, stream, line FROM console WHERE run_id = ? AND seq > ? ORDER BY seq LIMIT ?");
  s.bind(1, run_id).bind(2, after_seq).bind(3, limit);
  nlohmann::json out = nlohmann::json::array();
  while (s.step()) out.push_back({{"seq", s.int64(0)}, {"wall", s.real(1)}, {"stream", s.text(2)}, {"line", s.text(3)}});
  return out;
}

void Query::export_history_csv(int64_t run_id, std::ostream& out, bool system) {
  run(run_id);  // throws for an unknown run
  std::map<int64_t, size_t> column;  // key id → column
  std::vector<std::string> names;
  {
    Stmt s(*db_, "SELECT k.id, k.name FROM summaries s JOIN metric_keys k ON k.id = s.key_id "
                 "WHERE s.run_id = ? AND s.count > 0 AND (k.name GLOB 'system/*') = ? ORDER BY k.name");
    s.bind(1, run_id).bind(2, int64_t{system});
    while (s.step()) {
      column[s.int64(0)] = names.size();
      names.push_back(s.text(1));
    }
  }
  auto csv_field = [](const std::string& text) {
    if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
    std::string q = "\"";
    for (char c : text) q += c == '"' ? std::string("\"\"") : std::string(1, c);
    return q + "\"";
  };
  out << (system ? "sample" : "step") << ",wall";
  for (const auto& n : names) out << "," << csv_field(n);
  out << "\n";
  Stmt s(*db_, "SELECT step, key_id, value, wall FROM metrics WHERE run_id = ? ORDER BY step, key_id");
  s.bind(1, run_id);
  std::vector<std::optional<double>> row(names.size());
  std::optional<int64_t> step;
  double wall = 0;
  auto emit = [&] {
    out << *step << "," << format_double(wall);
    for (auto& v : row) {
      out << ",";
      if (v) out << format_double(*v);
      v.reset();
    }
    out << "\n";
  };
  while (s.step()) {
    auto it = column.find(s.int64(1));
    if (it == column.end()) continue;  // a key of the other axis
    if (step && *step != s.int64(0)) emit();
    if (!step || *step != s.int64(0)) wall = s.real(3);
    step = s.int64(0);
    row[it->second] = column_or_nan(s, 2);
  }
  if (step) emit();
}

}  // namespace tracker
