// A coordinator and N workers on this machine, for `i3lab up` and `i3lab bench scheduler`:
// the coordinator serves on a thread of this process, each worker is an `i3lab worker`
// process (so a crashing job or worker never takes the coordinator down), logging into DIR.
#pragma once

#include <atomic>
#include <exception>
#include <memory>
#include <string>
#include <sys/types.h>
#include <thread>
#include <vector>

#include "coordinator/server/coordinator.h"

namespace coordinator {

struct LocalOptions {
  std::string db_path = "i3lab.db";
  std::string listen = "tcp://127.0.0.1:5555";
  std::string dir = "i3lab-local";  // coordinator.log, worker-N.log, worker-N/ (work folders)
  int workers = 2;
  int slots_per_worker = 0;         // 0: each worker offers every CPU
  std::string i3lab_program;        // "": this executable's `i3lab` sibling
  bool record_assign_latencies = false;  // Options::record_assign_latencies
};

class LocalCluster {
 public:
  // Starts everything; throws std::runtime_error (with the log to read) if it cannot.
  explicit LocalCluster(LocalOptions options);
  // stop().
  ~LocalCluster();

  const std::string& endpoint() const { return coordinator_->endpoint(); }
  // The coordinator (its assign latencies are readable after stop()).
  const Coordinator& coordinator() const { return *coordinator_; }
  Coordinator& coordinator() { return *coordinator_; }
  // SIGTERM to the workers (they say BYE and stop their jobs), then stops the coordinator.
  void stop();
  // Rethrows what stopped the coordinator's thread (a database that refuses commits), if anything.
  void check() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  LocalOptions options_;
  std::unique_ptr<Coordinator> coordinator_;
  std::atomic<bool> stop_{false};
  std::thread serving_;
  std::vector<pid_t> workers_;
  bool stopped_ = false;
  std::exception_ptr error_;
};

}  // namespace coordinator
