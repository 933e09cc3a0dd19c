#include "web/server/server.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "common/util/clock.h"
#include "common/util/files.h"
#include "common/util/json.h"
#include "common/util/sha256.h"
#include "tracker/db/content.h"
#include "tracker/db/sqlite.h"
#include "tracker/query/query.h"
#include "web/assets/assets.h"

namespace web {

using nlohmann::json;

namespace {

constexpr size_t kMaxPathBytes = 2048;          // longer request paths are refused before routing
constexpr int kMaxBuckets = 10000;              // a series request's bucket count
constexpr int kMaxHistogramSteps = 1000;        // a histogram request's step count
constexpr size_t kMaxEventsPerRequest = 100000; // one POST /api/v1/events
constexpr size_t kMaxRanges = 8;                // Range: byte ranges per artifact-file request
constexpr int kUploadIdleS = 600;               // a file upload not continued this long is dropped
constexpr size_t kMaxUploads = 64;              // file uploads in progress at once (each an open file)

// An error the client caused or can act on: its HTTP status and message.
struct HttpError : std::runtime_error {
  int status;
  HttpError(int s, const std::string& what) : std::runtime_error(what), status(s) {}
};

// Two request headers cpp-httplib 0.11 acts on by itself are taken out before routing (the
// Request is cpp-httplib's own non-const object, passed on as const):
// - Accept-Encoding: it compresses every text and JSON answer the client accepts compressed,
//   with Brotli at quality 11 whenever the client accepts "br", as every browser does: 10 s for
//   the 4.6 MB list of 10,000 runs, against 0.5 s to make and send it as it is.
// - Range, but for artifact files: it applies a range to whatever answer is sent, an error
//   included, and hands a content provider the range unchecked. Artifact files check theirs
//   against the file's size; every other answer, and every error, ignores Range and is sent
//   whole, as RFC 9110 allows.
httplib::Request& mutable_request(const httplib::Request& req) { return const_cast<httplib::Request&>(req); }
void drop_ranges(const httplib::Request& req) { mutable_request(req).ranges.clear(); }

void send_json(httplib::Response& res, const json& body, int status = 200) {
  res.status = status;
  res.set_content(util::dump_json(body), "application/json");
}

// A query parameter as an integer; `fallback` when absent. Names the parameter when malformed.
int64_t int_param(const httplib::Request& req, const char* name, int64_t fallback, int64_t lo = INT64_MIN,
                  int64_t hi = INT64_MAX) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    throw HttpError(400, std::string("query parameter \"") + name + "\" must be an integer, not \"" + util::cut(text, 40) + "\"");
  if (v < lo || v > hi)
    throw HttpError(400, std::string("query parameter \"") + name + "\" must be in " + std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

double double_param(const httplib::Request& req, const char* name, double fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v))
    throw HttpError(400, std::string("query parameter \"") + name + "\" must be a number, not \"" + util::cut(text, 40) + "\"");
  return v;
}

std::string required_param(const httplib::Request& req, const char* name) {
  if (!req.has_param(name) || req.get_param_value(name).empty())
    throw HttpError(400, std::string("query parameter \"") + name + "\" is required");
  return req.get_param_value(name);
}

// "/a/b/c" → {"a", "b", "c"}.
std::vector<std::string> segments(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    const size_t j = path.find('/', i);
    const std::string part = path.substr(i, j == std::string::npos ? std::string::npos : j - i);
    if (!part.empty()) out.push_back(part);
    if (j == std::string::npos) break;
    i = j + 1;
  }
  return out;
}

int64_t run_id_of(const std::string& text) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v <= 0)
    throw HttpError(404, "no run \"" + util::cut(text, 40) + "\": run ids are positive integers");
  return v;
}

json number_or_null(double v) { return std::isfinite(v) ? json(v) : json(); }

// config {"optim": {"lr": 1e-3}} → {"config.optim.lr": 0.001}: scalars only, long text cut.
void flatten(const json& value, const std::string& prefix, json& out, int depth = 0) {
  if (value.is_object() && depth < 8) {
    for (auto it = value.begin(); it != value.end(); ++it) flatten(it.value(), prefix + "." + it.key(), out, depth + 1);
  } else if (value.is_string()) {
    out[prefix] = util::cut(value.get<std::string>(), 120);
  } else if (value.is_number() || value.is_boolean() || value.is_null()) {
    out[prefix] = value;
  } else {
    out[prefix] = util::brief(value, 120);
  }
}

bool constant_time_equal(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i % (b.empty() ? 1 : b.size())]);
  return diff == 0;
}

}  // namespace

bool is_loopback_host(const std::string& host) {
  return host == "127.0.0.1" || host == "::1" || host == "localhost" || host == "[::1]";
}

void parse_http_address(const std::string& text, Options* options) {
  const size_t colon = text.rfind(':');
  const std::string bad = "--http " + util::cut(text, 60) + ": expected HOST:PORT, e.g. 127.0.0.1:8080";
  if (colon == std::string::npos) throw std::invalid_argument(bad);
  std::string host = text.substr(0, colon);
  const std::string port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  int p = -1;
  const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || end != port.data() + port.size() || p < 0 || p > 65535) throw std::invalid_argument(bad + " (PORT 0..65535)");
  options->host = host.empty() ? "127.0.0.1" : host;
  options->port = p;
}

std::string read_token_file(const std::string& path) {
  std::string text = util::read_file(path, 4096);
  text = text.substr(0, text.find('\n'));
  while (!text.empty() && (text.back() == '\r' || text.back() == ' ')) text.pop_back();
  if (text.size() < 16) throw std::invalid_argument(path + ": the token must be at least 16 characters on the first line");
  return text;
}

std::string exposure_warning(const Options& options) {
  if (is_loopback_host(options.host)) return "";
  return "HTTP on " + options.host + ": anyone who reaches it can read every run" +
         (options.token.empty() ? "; writes are off (no --http-token)" : "; writes need the token");
}

struct Server::Impl {
  Options options;
  httplib::Server http;
  tracker::ContentStore content;
  int port = 0;
  int listen_fd = -1;  // the listening socket, as cpp-httplib's socket options hook saw it
  std::atomic<bool> stopping{false};
  std::atomic<int> streams{0};

  // Read-only connections, one per request in flight, kept for the next.
  std::mutex pool_mu;
  std::vector<std::unique_ptr<tracker::Query>> pool;

  // File uploads in progress (PUT /api/v1/files/SHA256), by SHA-256.
  struct Upload {
    std::unique_ptr<tracker::IncomingFile> file;
    double touched = 0;
  };
  std::mutex uploads_mu;
  std::map<std::string, Upload> uploads;

  explicit Impl(Options o) : options(std::move(o)), content(options.db_path) {
    if (!options.log) options.log = [](const std::string& line) { std::cerr << "http: " << line << std::endl; };
    release(std::make_unique<tracker::Query>(options.db_path));  // fails here, not on the first request
  }

  void log(const std::string& line) { options.log(line); }

  std::unique_ptr<tracker::Query> acquire() {
    {
      std::lock_guard<std::mutex> lock(pool_mu);
      if (!pool.empty()) {
        auto q = std::move(pool.back());
        pool.pop_back();
        return q;
      }
    }
    return std::make_unique<tracker::Query>(options.db_path);
  }
  void release(std::unique_ptr<tracker::Query> q) {
    std::lock_guard<std::mutex> lock(pool_mu);
    if (q && pool.size() < static_cast<size_t>(kThreads)) pool.push_back(std::move(q));
  }
  // Runs `f` with a pooled connection, which goes back to the pool however `f` ends (a 404 is
  // as common as a read, and a read-only connection has no state to spoil).
  template <typename F>
  auto with_query(F f) {
    struct Lease {
      Impl& impl;
      std::unique_ptr<tracker::Query> q;
      ~Lease() { impl.release(std::move(q)); }
    } lease{*this, acquire()};
    return f(*lease.q);
  }
  // Throws 404 unless run `id` exists.
  static void need_run(tracker::Query& q, int64_t id) {
    if (!q.has_run(id)) throw HttpError(404, "no run with id " + std::to_string(id));
  }

  bool writes_allowed_without_token() const { return is_loopback_host(options.host) && options.token.empty(); }

  // --- before routing: size, host and token checks ------------------------------------------

  httplib::Server::HandlerResponse check_request(const httplib::Request& req, httplib::Response& res) {
    res.set_header("X-Content-Type-Options", "nosniff");
    res.set_header("Referrer-Policy", "no-referrer");
    mutable_request(req).headers.erase("Accept-Encoding");
    if (req.path != "/api/v1/artifact/file" || req.method != "GET") drop_ranges(req);
    if (req.path.size() > kMaxPathBytes) return refuse(req, res, 414, "the request path is longer than " + std::to_string(kMaxPathBytes) + " bytes");
    if (is_loopback_host(options.host)) {
      // A loopback server answers only to loopback names: a page whose DNS name was rebound to
      // 127.0.0.1 sends its own name here.
      std::string host = req.get_header_value("Host");
      if (!host.empty() && host[0] == '[') host = host.substr(0, host.find(']') == std::string::npos ? 0 : host.find(']') + 1);  // [::1]:8080
      else host = host.substr(0, host.find(':'));                                     // localhost:8080
      if (!req.get_header_value("Host").empty() && !is_loopback_host(host))
        return refuse(req, res, 421, "this server answers only to 127.0.0.1, localhost or [::1], not Host \"" + util::cut(host, 60) + "\"");
    }
    if (req.method == "GET" || req.method == "HEAD") return httplib::Server::HandlerResponse::Unhandled;
    if (req.method != "POST" && req.method != "PUT")
      return refuse(req, res, 405, req.method + " is not a method this API takes (GET, POST, PUT)");
    if (!options.backend)
      return refuse(req, res, 405, "this server is read-only (i3lab ui); write through a coordinator started with --http");
    // cpp-httplib 0.11 holds only a body with a Content-Length to its size limit: a chunked one,
    // one without a length, or a compressed one (inflated as it is read) could be any size.
    if (req.has_header("Transfer-Encoding") || !req.has_header("Content-Length"))
      return refuse(req, res, 411, "a write needs a Content-Length (at most " + std::to_string(kMaxBodyBytes) + " bytes), not a chunked body");
    if (req.has_header("Content-Encoding"))
      return refuse(req, res, 415, "send the body uncompressed (no Content-Encoding)");
    if (!options.token.empty()) {
      const std::string auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) != 0 || !constant_time_equal(auth.substr(7), options.token))
        return refuse(req, res, 401, "writes need the server's token: send \"Authorization: Bearer TOKEN\"");
    } else if (!writes_allowed_without_token()) {
      return refuse(req, res, 403, "this server listens beyond loopback without a token, so it takes no writes; "
                              "start it with --http-token FILE");
    }
    return httplib::Server::HandlerResponse::Unhandled;
  }

  // Answers before the body was read. A body left unread would be read as the next request on
  // the connection, so the client is told to close it.
  httplib::Server::HandlerResponse refuse(const httplib::Request& req, httplib::Response& res, int status,
                                          const std::string& message) {
    if (req.has_header("Content-Length") || req.has_header("Transfer-Encoding")) res.set_header("Connection", "close");
    send_json(res, {{"error", message}}, status);
    return httplib::Server::HandlerResponse::Handled;
  }

  // Every handler's errors become a status and a JSON message; the server's own (a database
  // error, an unexpected exception) are logged too.
  template <typename F>
  void guarded(const httplib::Request& req, httplib::Response& res, F f) {
    bool server_error = false;
    try {
      f();
      return;
    } catch (const HttpError& e) {
      res.status = e.status;
      res.body = e.what();
    } catch (const tracker::NotFound& e) {
      res.status = 404;
      res.body = e.what();
    } catch (const tracker::DbError& e) {
      res.status = 500;
      res.body = std::string("database: ") + e.what();
      server_error = true;
    } catch (const std::invalid_argument& e) {
      res.status = 400;
      res.body = e.what();
    } catch (const std::exception& e) {
      res.status = 500;
      res.body = e.what();
      server_error = true;
    }
    if (server_error) log(req.method + " " + util::cut(req.path, 200) + ": " + res.body);
    drop_ranges(req);  // an error goes whole
    send_json(res, {{"error", res.body}}, res.status);
  }

  // --- GET ----------------------------------------------------------------------------------

  void get(const httplib::Request& req, httplib::Response& res) {
    const std::vector<std::string> s = segments(req.path);
    if (s.empty() || s[0] == "runs" || s[0] == "compare" || s[0] == "cluster" || s[0] == "sweeps") return page(res, "/index.html");
    if (s[0] != "api") return page(res, req.path);
    if (s.size() < 3 || s[1] != "v1") throw HttpError(404, "no such API path; see docs/api.md (/api/v1/…)");
    const std::string& what = s[2];
    if (what == "info" && s.size() == 3) return info(res);
    if (what == "projects" && s.size() == 3) return send_json(res, with_query([](tracker::Query& q) { return q.projects(); }));
    if (what == "runs" && s.size() == 3) return runs(req, res);
    if (what == "runs" && s.size() >= 4) {
      const int64_t id = run_id_of(s[3]);
      if (s.size() == 4) return run(id, res);
      const std::string& part = s[4];
      if (s.size() == 5 && part == "series") return series(req, id, res);
      if (s.size() == 5 && part == "histograms") return histograms(req, id, res);
      if (s.size() == 5 && part == "table") return table(req, id, res);
      if (s.size() == 5 && part == "console") return console(req, id, res);
      if (s.size() == 5 && part == "history.csv") return history_csv(req, id, res);
      if (s.size() == 5 && part == "stream") return run_stream(id, res);
    }
    if (what == "artifacts" && s.size() == 3) return artifacts(req, res);
    if (what == "artifact" && s.size() == 3) return artifact(req, res);
    if (what == "artifact" && s.size() == 4 && s[3] == "file") return artifact_file(req, res);
    if (what == "jobs" && s.size() == 3) return cluster_read(res, "jobs", {{"limit", int_param(req, "limit", 500, 1, 100000)}});
    if (what == "workers" && s.size() == 3) return cluster_read(res, "workers", json::object());
    if (what == "sweeps" && s.size() == 3) return cluster_read(res, "sweeps", {{"limit", int_param(req, "limit", 100, 1, 10000)}});
    if (what == "sweeps" && s.size() == 4) return sweep(s[3], res);
    if (what == "stream" && s.size() == 3) return global_stream(res);
    throw HttpError(404, "no such API path: " + util::cut(req.path, 100) + "; see docs/api.md");
  }

  void page(httplib::Response& res, const std::string& path) {
    std::string type;
    const EmbeddedFile* f = find_asset(path, &type);
    if (!f) throw HttpError(404, "no such page: " + util::cut(path, 100));
    res.set_header("Cache-Control", "no-cache");
    if (path == "/index.html")
      res.set_header("Content-Security-Policy",
                     "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                     "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'");
    res.set_content(f->body.data(), f->body.size(), type.c_str());
  }

  void info(httplib::Response& res) {
    send_json(res, {{"version", "1"},
                    {"database", options.db_path},
                    {"coordinator", static_cast<bool>(options.backend)},
                    {"writes", static_cast<bool>(options.backend) && (writes_allowed_without_token() || !options.token.empty())},
                    {"token_required", !options.token.empty()}});
  }

  void runs(const httplib::Request& req, httplib::Response& res) {
    tracker::RunFilter filter;
    filter.project = req.get_param_value("project");
    filter.status = req.get_param_value("status");
    filter.tag = req.get_param_value("tag");
    for (size_t i = 0; i < req.get_param_value_count("where"); ++i) filter.where.push_back(req.get_param_value("where", i));
    if (req.has_param("sort")) filter.sort_by = req.get_param_value("sort");
    const std::string order = req.has_param("order") ? req.get_param_value("order") : "asc";
    if (order != "asc" && order != "desc") throw HttpError(400, "query parameter \"order\" must be asc or desc");
    filter.descending = order == "desc";
    const int64_t offset = int_param(req, "offset", 0, 0, 1000000000), limit = int_param(req, "limit", 0, 0, 1000000000);
    const bool flat = req.get_param_value("view") == "flat";
    tracker::check_run_filter(filter);  // a malformed condition is the client's: 400
    // The version is read before the runs, so a change between the two shows in the next event.
    std::string version;
    std::vector<tracker::RunRecord> found = with_query([&](tracker::Query& q) {
      version = q.runs_version();
      return q.runs(filter);
    });
    json out = json::array();
    const size_t end = limit ? std::min(found.size(), static_cast<size_t>(offset + limit)) : found.size();
    for (size_t i = static_cast<size_t>(offset); i < end; ++i) {
      const tracker::RunRecord& r = found[i];
      if (!flat) {
        out.push_back(r.to_json());
        continue;
      }
      // The runs table's row: scalars only, so 10,000 runs stay a few MB.
      json row = {{"id", r.id}, {"uid", r.uid}, {"project", r.project}, {"name", r.name}, {"group", r.group},
                  {"tags", r.tags}, {"status", r.status}, {"created_at", r.created_at}, {"heartbeat_at", r.heartbeat_at},
                  {"finished_at", r.finished_at > 0 ? json(r.finished_at) : json()}};
      json values = json::object();
      flatten(r.config, "config", values);
      for (auto it = r.summary.begin(); it != r.summary.end(); ++it) {
        values["summary." + it.key()] = it.value()["last"];
        if (it.value().contains("best")) values["summary." + it.key() + ".best"] = it.value()["best"];
      }
      row["values"] = std::move(values);
      out.push_back(std::move(row));
    }
    send_json(res, {{"total", found.size()}, {"version", version}, {"runs", std::move(out)}});
  }

  void run(int64_t id, httplib::Response& res) {
    json out = with_query([&](tracker::Query& q) {
      const std::string version = q.run_version(id);  // before the rest, as in runs()
      json j = q.run(id).to_json();
      j["version"] = version;
      j["keys"] = q.metric_keys(id);
      j["tables"] = q.table_names(id);
      j["histograms"] = q.histogram_keys(id);
      return j;
    });
    send_json(res, out);
  }

  // ?key=K (repeatable) &x=step|time &from &to &buckets → {"x", "series": {K: [[first_step,
  // last_step, min, max, last, last_wall, count]…]}}. With x=time, from/to are unix seconds.
  void series(const httplib::Request& req, int64_t id, httplib::Response& res) {
    const size_t nkeys = req.get_param_value_count("key");
    if (nkeys == 0) throw HttpError(400, "query parameter \"key\" is required (one or more metric keys)");
    if (nkeys > 64) throw HttpError(400, "at most 64 keys per series request");
    const std::string x = req.has_param("x") ? req.get_param_value("x") : "step";
    if (x != "step" && x != "time") throw HttpError(400, "query parameter \"x\" must be step or time");
    const int buckets = static_cast<int>(int_param(req, "buckets", 1000, 1, kMaxBuckets));
    const bool by_step = x == "step";
    // By step, [from, to] clips each series' own span; by time, the span found is within it.
    const int64_t from_step = by_step ? int_param(req, "from", INT64_MIN) : INT64_MIN;
    const int64_t to_step = by_step ? int_param(req, "to", INT64_MAX) : INT64_MAX;
    const double from_wall = by_step ? 0 : double_param(req, "from", 0), to_wall = by_step ? 0 : double_param(req, "to", 1e12);
    json series = json::object();
    with_query([&](tracker::Query& q) {
      need_run(q, id);
      for (size_t i = 0; i < nkeys; ++i) {
        const std::string key = req.get_param_value("key", i);
        // Buckets span what the series has within [from, to], not the empty steps around it.
        json rows = json::array();
        if (const auto span = by_step ? q.step_range(id, key) : q.steps_between(id, key, from_wall, to_wall)) {
          const int64_t from = std::max(span->first, from_step), to = std::min(span->second, to_step);
          for (const tracker::Bucket& b : q.series(id, key, from, to, buckets))
            rows.push_back({b.first_step, b.last_step, number_or_null(b.min), number_or_null(b.max), number_or_null(b.last),
                            b.last_wall, b.count});
        }
        series[key] = std::move(rows);
      }
      return 0;
    });
    send_json(res, {{"x", x}, {"series", std::move(series)}});
  }

  void histograms(const httplib::Request& req, int64_t id, httplib::Response& res) {
    const std::string key = required_param(req, "key");
    const int steps = static_cast<int>(int_param(req, "steps", 200, 1, kMaxHistogramSteps));
    send_json(res, with_query([&](tracker::Query& q) {
                need_run(q, id);
                return json{{"key", key}, {"histograms", q.histograms(id, key, steps)}};
              }));
  }

  // ?name=N [&step=S] → {"name", "steps": [...], "step", "columns", "rows"}: the newest step
  // when none is named.
  void table(const httplib::Request& req, int64_t id, httplib::Response& res) {
    const std::string name = required_param(req, "name");
    send_json(res, with_query([&](tracker::Query& q) {
                need_run(q, id);
                const std::vector<int64_t> steps = q.table_steps(id, name);
                if (steps.empty()) throw HttpError(404, "run " + std::to_string(id) + " has no table \"" + util::cut(name, 60) + "\"");
                const int64_t step = int_param(req, "step", steps.back());
                json t = q.table(id, name, step);
                if (t.is_null()) throw HttpError(404, "table \"" + util::cut(name, 60) + "\" has no step " + std::to_string(step));
                t["name"] = name;
                t["steps"] = steps;
                t["step"] = step;
                return t;
              }));
  }

  void console(const httplib::Request& req, int64_t id, httplib::Response& res) {
    const int64_t after = int_param(req, "after", -1), limit = int_param(req, "limit", 1000, 1, 10000);
    send_json(res, with_query([&](tracker::Query& q) {
                need_run(q, id);
                return q.console(id, after, limit);
              }));
  }

  void history_csv(const httplib::Request& req, int64_t id, httplib::Response& res) {
    const bool system = req.get_param_value("system") == "1";
    std::ostringstream out;
    with_query([&](tracker::Query& q) {
      q.export_history_csv(id, out, system);
      return 0;
    });
    res.set_header("Content-Disposition", "attachment; filename=\"run-" + std::to_string(id) + (system ? "-system" : "") + ".csv\"");
    res.set_content(out.str(), "text/csv; charset=utf-8");
  }

  // ?name=N: that artifact's versions; ?run=UID: those the run logged or used; else all.
  void artifacts(const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.get_param_value("name"), run_uid = req.get_param_value("run");
    json out = json::array();
    for (const tracker::ArtifactVersion& v :
         with_query([&](tracker::Query& q) { return run_uid.empty() ? q.artifacts(name) : q.run_artifacts(run_uid); }))
      out.push_back(v.to_json());
    send_json(res, out);
  }

  void artifact(const httplib::Request& req, httplib::Response& res) {
    const std::string ref = required_param(req, "ref");
    send_json(res, with_query([&](tracker::Query& q) { return q.artifact(ref).to_json(); }));
  }

  // ?ref=NAME:vN&path=P: one file of a stored version, by its path in the version's manifest
  // (never a path on this machine). Range requests are answered (206) by cpp-httplib.
  void artifact_file(const httplib::Request& req, httplib::Response& res) {
    const std::string ref = required_param(req, "ref"), path = required_param(req, "path");
    const tracker::ArtifactVersion v = with_query([&](tracker::Query& q) { return q.artifact(ref); });
    auto f = std::find_if(v.files.begin(), v.files.end(), [&](const tracker::ArtifactFile& f) { return f.path == path; });
    if (f == v.files.end()) throw HttpError(404, v.name + ":v" + std::to_string(v.version) + " has no file \"" + util::cut(path, 100) + "\"");
    auto in = std::make_shared<std::ifstream>(content.path_of(f->sha256), std::ios::binary);
    if (!*in) throw HttpError(410, "the bytes of " + f->path + " are missing from the artifact store " + content.root());
    std::string base = f->path.substr(f->path.rfind('/') + 1);
    for (char& c : base)
      if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20) c = '_';
    const int64_t size = f->size;
    // cpp-httplib streams every range it is given, overlapping or not: "bytes=0-,0-,…" in one
    // header would send the file thousands of times. A download resumes with one range.
    if (req.ranges.size() > kMaxRanges) {
      res.set_header("Content-Range", "bytes */" + std::to_string(size));
      throw HttpError(416, "at most " + std::to_string(kMaxRanges) + " ranges per request");
    }
    for (const auto& [first, last] : req.ranges) {  // -1: absent ("bytes=-N" is the last N bytes)
      const bool fits = first == -1 ? last > 0 : first < size && (last == -1 || (first <= last && last < size));
      if (!fits) {
        res.set_header("Content-Range", "bytes */" + std::to_string(size));
        throw HttpError(416, "the range is outside " + f->path + " (" + std::to_string(size) + " bytes)");
      }
    }
    res.set_header("Content-Disposition", "attachment; filename=\"" + base + "\"");
    res.set_header("X-Content-SHA256", f->sha256);
    res.set_content_provider(static_cast<size_t>(f->size), "application/octet-stream",
                             [in](size_t offset, size_t length, httplib::DataSink& sink) {
                               char buf[1 << 16];
                               in->clear();
                               in->seekg(static_cast<std::streamoff>(offset));
                               while (length > 0) {
                                 in->read(buf, static_cast<std::streamsize>(std::min(length, sizeof buf)));
                                 const std::streamsize n = in->gcount();
                                 if (n <= 0) return false;
                                 if (!sink.write(buf, static_cast<size_t>(n))) return false;
                                 length -= static_cast<size_t>(n);
                               }
                               return true;
                             });
  }

  // One sweep with its trials, best value over time and parameter importance.
  void sweep(const std::string& text, httplib::Response& res) {
    int64_t id = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc() || end != text.data() + text.size() || id < 1) throw HttpError(404, "no sweep \"" + util::cut(text, 40) + "\"");
    try {
      cluster_read(res, "sweep_show", {{"id", id}});
    } catch (const std::invalid_argument& e) {
      // The coordinator's answer arrives as text; "no sweep N" is its not-found.
      if (std::string(e.what()).rfind("no sweep ", 0) == 0) throw HttpError(404, e.what());
      throw;
    }
  }

  void cluster_read(httplib::Response& res, const std::string& op, const json& args) {
    if (!options.backend) return send_json(res, {{"error", "no coordinator: this is i3lab ui, serving a database alone"}}, 404);
    send_json(res, options.backend(op, args));
  }

  // --- live streams (server-sent events) ----------------------------------------------------

  // Sends `event` (with its version as data) each time `version()` changes; comments keep the
  // connection alive. Ends when the client goes away or the server stops.
  void stream(httplib::Response& res, std::function<std::vector<std::pair<std::string, std::string>>(tracker::Query&)> versions) {
    // The stream keeps its own connection: data_version counts commits seen by one connection.
    struct State {
      std::unique_ptr<tracker::Query> q;
      int64_t data_version = -1;
      std::map<std::string, std::string> last;
    };
    auto state = std::make_shared<State>();
    state->q = acquire();  // before the count: if it throws, nothing is counted
    if (streams.fetch_add(1) >= kMaxStreams) {
      streams.fetch_sub(1);
      release(std::move(state->q));
      throw HttpError(503, "too many live streams open (" + std::to_string(kMaxStreams) + "); close some dashboard tabs");
    }
    res.set_header("Cache-Control", "no-cache");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, state, versions](size_t, httplib::DataSink& sink) {
          const double started = util::monotonic_seconds();
          while (!stopping.load()) {
            std::string out;
            const int64_t data_version = state->q->data_version();
            if (data_version != state->data_version) {  // something was committed: look closer
              state->data_version = data_version;
              for (const auto& [event, version] : versions(*state->q)) {
                const auto seen = state->last.find(event);
                if (seen != state->last.end() && seen->second == version) continue;
                state->last[event] = version;
                out += "event: " + event + "\ndata: " + util::dump_json(json(version)) + "\n\n";
              }
            }
            if (out.empty() && util::monotonic_seconds() - started >= kKeepAliveS) out = ":\n\n";
            if (!out.empty()) return sink.write(out.data(), out.size());
            if (sink.is_writable && !sink.is_writable()) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(kPollMs));
          }
          sink.done();
          return true;
        },
        [this, state](bool) {
          release(std::move(state->q));
          streams.fetch_sub(1);
        });
  }

  void run_stream(int64_t id, httplib::Response& res) {
    with_query([&](tracker::Query& q) {
      need_run(q, id);
      return 0;
    });
    stream(res, [id](tracker::Query& q) {
      return std::vector<std::pair<std::string, std::string>>{{"run", q.run_version(id)}};
    });
  }

  void global_stream(httplib::Response& res) {
    stream(res, [](tracker::Query& q) {
      return std::vector<std::pair<std::string, std::string>>{
          {"runs", q.runs_version()}, {"jobs", q.jobs_version()}, {"workers", q.workers_version()}};
    });
  }

  // --- writes -------------------------------------------------------------------------------

  json json_body(const httplib::Request& req) {
    const std::string type = req.get_header_value("Content-Type");
    if (type.rfind("application/json", 0) != 0)
      throw HttpError(415, "send the body as Content-Type: application/json");
    json body = util::parse_json(req.body, "request body");
    if (!body.is_object()) throw HttpError(400, "request body: must be a JSON object");
    return body;
  }

  void post(const httplib::Request& req, httplib::Response& res) {
    const std::vector<std::string> s = segments(req.path);
    if (s.size() >= 3 && s[0] == "api" && s[1] == "v1") {
      if (s.size() == 3 && s[2] == "events") {
        json body = json_body(req);
        if (!body.contains("events") || !body["events"].is_array())
          throw HttpError(400, "request body: \"events\" must be an array of tracker events (docs/api.md)");
        if (body["events"].size() > kMaxEventsPerRequest)
          throw HttpError(413, "at most " + std::to_string(kMaxEventsPerRequest) + " events per request");
        return send_json(res, options.backend("events", body));
      }
      if (s.size() == 3 && s[2] == "jobs") return send_json(res, options.backend("submit", json_body(req)));
      if (s.size() == 5 && s[2] == "jobs" && s[4] == "cancel") {
        json_body(req);
        int64_t id = 0;
        const auto [end, ec] = std::from_chars(s[3].data(), s[3].data() + s[3].size(), id);
        if (ec != std::errc() || end != s[3].data() + s[3].size()) throw HttpError(404, "no job \"" + util::cut(s[3], 40) + "\"");
        return send_json(res, options.backend("cancel", {{"id", id}}));
      }
    }
    throw HttpError(404, "no such API path for POST: " + util::cut(req.path, 100) + "; see docs/api.md");
  }

  // PUT /api/v1/files/SHA256?offset=N&size=S, body: the next chunk (application/octet-stream).
  // Answers {"have": bytes stored so far, "done"}; a file the store has already is done at once.
  // The bytes join the store only when the whole file hashes to SHA256.
  void put(const httplib::Request& req, httplib::Response& res) {
    const std::vector<std::string> s = segments(req.path);
    if (s.size() != 4 || s[0] != "api" || s[1] != "v1" || s[2] != "files")
      throw HttpError(404, "no such API path for PUT: " + util::cut(req.path, 100) + "; see docs/api.md");
    const std::string& sha = s[3];
    if (!util::is_sha256_hex(sha)) throw HttpError(400, "the file's name must be its SHA-256: 64 lowercase hex digits");
    if (req.get_header_value("Content-Type") != "application/octet-stream")
      throw HttpError(415, "send file chunks as Content-Type: application/octet-stream");
    if (!req.has_param("size")) throw HttpError(400, "query parameter \"size\" is required: the whole file's size in bytes");
    const int64_t size = int_param(req, "size", 0, 0, int64_t{1} << 40), offset = int_param(req, "offset", 0, 0, size);
    std::lock_guard<std::mutex> lock(uploads_mu);
    const double now = util::monotonic_seconds();
    for (auto it = uploads.begin(); it != uploads.end();)
      it = now - it->second.touched > kUploadIdleS ? uploads.erase(it) : std::next(it);
    if (content.has(sha)) {
      uploads.erase(sha);
      return send_json(res, {{"have", size}, {"done", true}});
    }
    if (!uploads.count(sha) && uploads.size() >= kMaxUploads)
      throw HttpError(503, std::to_string(kMaxUploads) + " file uploads are in progress; finish those first or try again later");
    Upload& u = uploads[sha];
    if (!u.file || u.file->size() != size) u.file = std::make_unique<tracker::IncomingFile>(content, sha, size);
    u.touched = now;
    if (offset != u.file->have())
      return send_json(res, {{"error", "expected the chunk at offset " + std::to_string(u.file->have())}, {"have", u.file->have()}, {"done", false}}, 409);
    try {
      const bool done = u.file->append(req.body);
      const int64_t have = u.file->have();
      if (done) uploads.erase(sha);
      send_json(res, {{"have", have}, {"done", done}});
    } catch (const tracker::DamagedContent& e) {
      uploads.erase(sha);
      throw HttpError(400, e.what());
    } catch (const std::exception&) {
      uploads.erase(sha);
      throw;
    }
  }
};

Server::Server(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  Impl& s = *impl_;
  httplib::Server& h = s.http;
  h.new_task_queue = [] { return new httplib::ThreadPool(kThreads); };
  h.set_payload_max_length(kMaxBodyBytes);
  h.set_read_timeout(10);
  h.set_write_timeout(10);
  h.set_keep_alive_max_count(1000);
  h.set_pre_routing_handler([&s](const httplib::Request& req, httplib::Response& res) { return s.check_request(req, res); });
  h.Get(".*", [&s](const httplib::Request& req, httplib::Response& res) { s.guarded(req, res, [&] { s.get(req, res); }); });
  h.Post(".*", [&s](const httplib::Request& req, httplib::Response& res) { s.guarded(req, res, [&] { s.post(req, res); }); });
  h.Put(".*", [&s](const httplib::Request& req, httplib::Response& res) { s.guarded(req, res, [&] { s.put(req, res); }); });
  // What cpp-httplib answers itself (a body over the limit, a malformed request) gets a message too.
  h.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    drop_ranges(req);
    if (!res.body.empty()) return;  // a handler's own answer
    const std::string message = res.status == 413 ? "the request body is larger than " + std::to_string(kMaxBodyBytes) + " bytes"
                                                  : "HTTP " + std::to_string(res.status);
    send_json(res, {{"error", message}}, res.status);
  });
  h.set_exception_handler([&s](const httplib::Request& req, httplib::Response& res, std::exception_ptr) {
    drop_ranges(req);
    send_json(res, {{"error", "internal error"}}, 500);
    s.log(req.method + " " + util::cut(req.path, 200) + ": internal error");
  });
  // cpp-httplib's default sets SO_REUSEPORT, which lets a second server bind a port in use and
  // take half its connections; SO_REUSEADDR alone still allows a restart over TIME_WAIT.
  h.set_socket_options([&s](int fd) {
    const int yes = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    s.listen_fd = fd;
  });
  if (s.options.port == 0) {
    s.port = h.bind_to_any_port(s.options.host);
  } else {
    s.port = h.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1;
  }
  if (s.port <= 0)
    throw std::runtime_error("cannot listen for HTTP on " + s.options.host + ":" + std::to_string(s.options.port) +
                             " (in use? choose another with --http HOST:PORT)");
  // Debian's cpp-httplib 0.11 listens with a backlog of 5, so a burst of new connections waits
  // for the kernel's 1 s SYN retry; listen() again on a listening socket only sets the backlog.
  if (::listen(s.listen_fd, SOMAXCONN) != 0) s.log("cannot raise the listen backlog; bursts of connections may wait 1 s");
}

Server::~Server() { stop(); }

int Server::port() const { return impl_->port; }

std::string Server::url() const {
  const std::string& host = impl_->options.host;
  return "http://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(impl_->port);
}

void Server::serve() { impl_->http.listen_after_bind(); }

void Server::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

}  // namespace web
