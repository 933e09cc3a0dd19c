// Talking to a coordinator as a command-line client: one REQUEST, one REPLY (protocol.h).
//
//   client::Client c("tcp://127.0.0.1:5555");
//   nlohmann::json ids = c.call("submit", {{"jobs", {spec}}})["ids"];
//
// Operations (the coordinator's answers in brackets):
//   submit  {jobs: [spec…]}                       [{ids: [id…]}]  (all or none are queued)
//   jobs    {limit, status, ids}                  [[{id, name, kind, status, attempts, worker, …}…]] newest first
//   counts  {}                                    [{STATUS: n…}]
//   cancel  {id}                                  [{id, status, note}]
//   workers {}                                    [[{id, hostname, status, cpu_slots, used_slots, gpus, …}…]]
//   logs    {id, attempt (0: newest), after, limit} [{attempt, attempts, status, lines: [[n, stream, wall, text]…]}]
//   ping    {}                                    [{}]
#pragma once

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace client {

constexpr const char* kDefaultEndpoint = "tcp://127.0.0.1:5555";

// The coordinator answered ERROR: its message, for people.
struct RequestError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// No answer in time (no coordinator there, or it is overloaded).
struct Unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Client {
 public:
  // With I3LAB_KEY and I3LAB_COORDINATOR_KEY in the environment, connects with CURVE keys
  // (coordinator/keys/keys.h). Throws std::invalid_argument for a bad endpoint,
  // std::runtime_error for a bad key.
  explicit Client(const std::string& endpoint);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Sends `op` with `args` and waits for its answer. Throws RequestError, Unreachable.
  nlohmann::json call(const std::string& op, const nlohmann::json& args = nlohmann::json::object(),
                      std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  struct Socket;
  std::unique_ptr<Socket> socket_;
  std::string endpoint_;
  int64_t next_id_ = 1;
  bool curve_ = false;  // connected with CURVE keys
};

}  // namespace client
