// The worker: registers with a coordinator, runs the jobs it is assigned as child processes,
// and reports what happens to them. One thread, one DEALER socket (protocol.h).
//
// It keeps going whatever the coordinator does. Silent for kHeartbeatLiveness intervals, the
// coordinator is presumed gone: the worker opens a new socket and says HELLO again, backing off
// from kReconnectMin to kReconnectMax, while its jobs run on. Every HELLO starts a new session
// and lists the attempts still running and the exits not yet acknowledged; an ASSIGN of an
// older session is dropped (its attempt was re-queued when the coordinator read the HELLO that
// did not list it), so no attempt runs twice.
//
// Jobs. Each attempt runs in WORKDIR/job-ID, in a process group of its own, with the job's
// environment plus I3LAB_JOB_ID, I3LAB_ATTEMPT and CUDA_VISIBLE_DEVICES. Its stdout and stderr
// go line by line to WORKDIR/job-ID/attempt-N.log and to the coordinator (LOG, re-sent until
// acknowledged).
//
// Tracker data. Train and eval jobs run as `i3lab train|eval … --db WORKDIR/job-ID/attempt-N.db`,
// a database of the attempt's own marked for relay (tracker/relay/relay.h): the job's run is
// durable there at once, and the worker forwards its relay log (EVENTS, one batch in flight,
// re-sent until acknowledged; artifact files the coordinator lacks as UPLOAD chunks). The
// attempt's exit is reported once the coordinator holds all of it (or after kRelayDrainS), so
// a retry resumes from the newest checkpoint. An ASSIGN with "resume" makes that database from
// the run's seed and fetches the checkpoint's files (FETCH) before the job starts.
// CANCEL sends SIGTERM to the group and SIGKILL after the grace period; when the lead process
// ends, whatever is left of its group is killed. A job that crashes, runs out of memory or
// hangs is a child that ends or is killed; the worker carries on.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "coordinator/keys/keys.h"
#include "worker/resources/resources.h"

namespace worker {

struct Options {
  std::string coordinator = "tcp://127.0.0.1:5555";
  std::string name;                     // "": HOSTNAME-<6 hex digits>
  std::string workdir = "i3lab-worker";  // created if missing
  resources::Offer offer;
  std::string i3lab_program;            // runs train and eval jobs; "": this executable's `i3lab` sibling
  std::optional<keys::ClientKeys> keys;  // CURVE: this worker's key pair and the coordinator's public key
  std::function<void(const std::string&)> log;  // default: stderr
};

class Worker {
 public:
  // Creates the work folder. Throws std::runtime_error if it cannot.
  explicit Worker(Options options);
  ~Worker();
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  const std::string& name() const;

  // Serves until `stop` is true; then says BYE, stops its jobs (SIGTERM, SIGKILL after the
  // grace period) and returns.
  void serve(const std::atomic<bool>& stop);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace worker
