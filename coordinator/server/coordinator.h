// The coordinator: one ROUTER socket, the durable job queue (jobs/job_store.h), placement
// (scheduler/placement.h) and the worker registry, served by one thread.
//
// Each turn of the loop handles every message that has arrived, checks the timers (worker
// liveness, job timeouts, retry backoff), places what can run, commits once (group commit),
// and only then sends what the turn decided: an ASSIGN, an EXITED_ACK or a submit's job ids
// is never sent for a change the disk does not hold. So a coordinator killed at any instant
// and started again on the same database loses no job and runs none twice: workers that come
// back say in HELLO which attempts they still run and which ended (protocol.h), and the
// coordinator re-queues exactly the attempts nobody runs.
//
// Lifecycle of a job: queued → assigned → running → succeeded | failed | cancelled. An
// attempt that exits non-zero, is killed by a signal, or whose worker is lost is retried up
// to max_restarts times: after a failure with backoff (1 s, 2 s, 4 s … at most 60 s), after a
// lost worker at once. An attempt that never started (its ASSIGN was never taken) is not
// counted. A multi-rank job is placed all-or-nothing; one failed rank stops the others.
#pragma once

#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <optional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "coordinator/keys/keys.h"

namespace coordinator {

struct Options {
  std::string db_path = "i3lab.db";
  // Where artifact files live; "" for DB.artifacts beside the database. Given, DB.artifacts
  // becomes a link to it, so every reader of the database finds the files.
  std::string artifacts;
  // ZeroMQ endpoint to bind; a port of "*" picks a free one (endpoint() says which).
  std::string listen = "tcp://127.0.0.1:5555";
  // CURVE (coordinator/keys/keys.h): with a key pair, only clients whose public key is in
  // `allowed` get in (workers and command-line clients alike). Listening beyond this machine
  // needs keys, or `insecure` (say so, on purpose).
  std::optional<keys::KeyPair> key;
  std::map<std::string, std::string> allowed;  // public key → name
  bool insecure = false;
  // Keep every ASSIGN's latency for assign_latencies_ms() (a benchmark; a long-lived
  // coordinator would grow by one number per job).
  bool record_assign_latencies = false;
  // Where log lines go (one line each, no newline); default: stderr.
  std::function<void(const std::string&)> log;
};

class Coordinator {
 public:
  // Opens the database (recovering the queue, leases and workers it holds) and binds.
  // Throws tracker::DbError for an unusable database, std::runtime_error for an endpoint
  // that cannot be bound or is refused (beyond loopback without keys or --insecure), or an
  // artifact folder other than the one the database's files are in.
  explicit Coordinator(Options options);
  ~Coordinator();
  Coordinator(const Coordinator&) = delete;
  Coordinator& operator=(const Coordinator&) = delete;

  // The bound endpoint, e.g. tcp://127.0.0.1:41823.
  const std::string& endpoint() const;

  // Serves until `stop` is true (checked at least every 100 ms). Throws tracker::DbError if
  // the database stops taking commits: nothing more is promised to anyone.
  void serve(const std::atomic<bool>& stop);

  // The operations a command-line client sends as a REQUEST (client/client.h), from another
  // thread of this process (the web server): the answer arrives once the turn that handled it
  // has committed, as for a client. The future throws std::invalid_argument with the
  // coordinator's message for a refused request, std::runtime_error once serve() has returned.
  // Thread-safe.
  std::future<nlohmann::json> call(const std::string& op, nlohmann::json args);

  // The dashboard's address (http://HOST:PORT) for jobs: every ASSIGN from now on gives it as
  // I3LAB_URL, unless the job's env sets one, so a Python client in a job (a W&B-style sweep
  // trial) logs here. Thread-safe.
  void advertise_http(const std::string& url);

  // For `i3lab bench scheduler`: per ASSIGN, milliseconds from the moment the job could have
  // been placed (submitted, or its worker's capacity freed, whichever is later) until the
  // ASSIGN left, after its commit. Read after serve() returned; empty unless
  // Options::record_assign_latencies.
  const std::vector<double>& assign_latencies_ms() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace coordinator
