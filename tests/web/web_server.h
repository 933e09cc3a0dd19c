// A real `i3lab coordinator --http` (or `i3lab ui`) for the web tests, on ephemeral ports, and
// tracker events in their JSON form (tracker/events/events.h) to write through the API.
#pragma once

#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/cluster.h"

struct WebServer {
  std::unique_ptr<Proc> proc;
  std::string endpoint;  // the coordinator's ZeroMQ endpoint ("" for i3lab ui)
  std::string host;
  int port = 0;
  httplib::Client client() const {
    httplib::Client c(host, port);
    c.set_read_timeout(10);
    return c;
  }
};

// Reads "dashboard: http://HOST:PORT/" from the process's stdout.
inline void read_dashboard_line(WebServer& w) {
  for (int i = 0; i < 4; ++i) {
    const std::string line = w.proc->read_line();
    const size_t at = line.find("http://");
    if (at == std::string::npos) continue;
    const std::string rest = line.substr(at + 7);
    const size_t colon = rest.rfind(':'), slash = rest.find('/', colon);
    w.host = rest.substr(0, colon);
    w.port = std::stoi(rest.substr(colon + 1, slash - colon - 1));
    if (w.host == "0.0.0.0") w.host = "127.0.0.1";
    return;
  }
  throw std::runtime_error("no dashboard line: " + w.proc->stderr_text());
}

inline WebServer start_web_coordinator(const std::string& dir, const std::string& http = "127.0.0.1:0",
                                       const std::vector<std::string>& extra = {}) {
  WebServer w;
  std::vector<std::string> args = {"coordinator", "--db", dir + "/i3lab.db", "--listen", "tcp://127.0.0.1:*", "--http", http};
  args.insert(args.end(), extra.begin(), extra.end());
  w.proc = std::make_unique<Proc>(args, dir + "/coordinator.err");
  const std::string line = w.proc->read_line();
  const size_t at = line.find("tcp://");
  if (at == std::string::npos) throw std::runtime_error("coordinator did not start: " + w.proc->stderr_text());
  w.endpoint = line.substr(at, line.find(',', at) - at);
  read_dashboard_line(w);
  return w;
}

inline WebServer start_ui(const std::string& db) {
  WebServer w;
  w.proc = std::make_unique<Proc>(std::vector<std::string>{"ui", "--db", db, "--http", "127.0.0.1:0"}, db + ".ui.err");
  read_dashboard_line(w);
  return w;
}

namespace events {
using nlohmann::json;
inline json created(const std::string& uid, const std::string& name, const json& config = json::object(),
                    const std::string& project = "web") {
  return {{"run", uid}, {"seq", 1}, {"type", "run_created"}, {"project", project}, {"name", name}, {"group", ""},
          {"tags", json::array({"t1"})}, {"notes", ""}, {"config", config}, {"wall", 1000.0}};
}
inline json metrics(const std::string& uid, uint64_t seq, int64_t step, const json& values) {
  return {{"run", uid}, {"seq", seq}, {"type", "metrics"}, {"step", step}, {"wall", 1000.0 + step}, {"values", values}};
}
inline json finished(const std::string& uid, uint64_t seq) {
  return {{"run", uid}, {"seq", seq}, {"type", "run_finished"}, {"status", "finished"}, {"wall", 5000.0}};
}
}  // namespace events

// POSTs {"events": list} and returns the parsed answer (status in *status).
inline nlohmann::json post_events(const WebServer& w, const nlohmann::json& list, int* status = nullptr,
                                  const httplib::Headers& headers = {}) {
  auto c = w.client();
  auto res = c.Post("/api/v1/events", headers, nlohmann::json{{"events", list}}.dump(), "application/json");
  if (!res) throw std::runtime_error("no answer from " + w.host + ":" + std::to_string(w.port));
  if (status) *status = res->status;
  return nlohmann::json::parse(res->body, nullptr, false);
}

inline nlohmann::json get_json(const WebServer& w, const std::string& path, int* status = nullptr) {
  auto c = w.client();
  auto res = c.Get(path.c_str());
  if (!res) throw std::runtime_error("no answer for " + path);
  if (status) *status = res->status;
  return nlohmann::json::parse(res->body, nullptr, false);
}
