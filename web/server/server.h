// The HTTP API and the dashboard (docs/api.md): one tracker database served over HTTP.
//
// Reads go straight to the database through a pool of read-only tracker::Query connections
// (WAL: they never wait for a writer). Writes are not done here: they are handed to a
// Backend, the coordinator of this process (Coordinator::call), which applies them in its own
// group commit, so an HTTP write is acknowledged by the same commit as everything else. With
// no backend (`i3lab ui --db FILE`) the server is read-only and refuses writes with 405.
//
// Live views poll: each server-sent-event stream asks its connection every kPollMs whether
// anything was committed since (Query::data_version); only then does it read the version
// strings of what it watches (Query::run_version, runs_version, the jobs and workers), and it
// sends an event for each that changed; the page then reads what it shows again.
//
// Security (docs/api.md, "Security"):
//   - Listens on 127.0.0.1 unless told otherwise. Beyond loopback, writes need the token
//     (Authorization: Bearer TOKEN); without a token they are refused.
//   - On loopback the Host header must name loopback (no DNS rebinding); writes need
//     Content-Type application/json (or application/octet-stream for file chunks), which a
//     page of another origin cannot send without a CORS preflight that this server never
//     answers (CORS is off).
//   - Bodies are at most kMaxBodyBytes, uploads in progress at most 64; every file served is
//     named by a stored artifact version, never by a client's path.
//   - The dashboard's page forbids inline script (Content-Security-Policy), and its code
//     writes user text only as text, never as HTML.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace web {

constexpr size_t kMaxBodyBytes = 8u << 20;  // a request body: an event batch, a file chunk
constexpr int kPollMs = 250;                // how often a live stream looks for changes
constexpr int kKeepAliveS = 15;             // a stream sends a comment at least this often
constexpr int kMaxStreams = 32;             // concurrent event streams; more get 503
constexpr int kThreads = 64;                // request threads (streams hold one each)

// What performs writes and live cluster reads: Coordinator::call. Returns the operation's
// answer; throws std::invalid_argument for a refused request (400, its message to the client).
using Backend = std::function<nlohmann::json(const std::string& op, const nlohmann::json& args)>;

struct Options {
  std::string db_path;
  std::string host = "127.0.0.1";
  int port = 8080;  // 0: any free port (port() says which)
  // Required for writes when set, and for any write when `host` is not loopback.
  std::string token;
  Backend backend;  // empty: read-only
  // Where log lines go (one line each, no newline); default: stderr.
  std::function<void(const std::string&)> log;
};

// True for 127.0.0.1, ::1 and localhost.
bool is_loopback_host(const std::string& host);

// "HOST:PORT" ("127.0.0.1:8080", "0.0.0.0:80", "[::1]:8080", ":8080" for 127.0.0.1) into
// Options::host and port. Throws std::invalid_argument naming the text.
void parse_http_address(const std::string& text, Options* options);

// The token in file `path`: its first line, at least 16 characters. Throws
// std::invalid_argument naming the file.
std::string read_token_file(const std::string& path);

// The message for a server started beyond loopback: who can read, who can write.
std::string exposure_warning(const Options& options);

class Server {
 public:
  // Opens the database (read-only) and binds. Throws tracker::DbError for an unusable
  // database, std::runtime_error for an address that cannot be bound.
  explicit Server(Options options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  int port() const;
  // http://HOST:PORT
  std::string url() const;

  // Serves until stop() (from another thread or a signal handler's flag watcher).
  void serve();
  // Ends serve(): open streams close within kPollMs.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace web
