// tracker::Store: one database file and the writer thread that applies events to it.
//
// Callers never wait on disk I/O: submit() appends an event to an in-memory queue (a few
// hundred nanoseconds) and the writer thread applies what is queued in batched transactions,
// through one Applier (apply.h), keeping each run's per-key summaries and downsampling tiers
// current at the same time. A queue holding max_pending_points metric points makes submit()
// wait (back-pressure): nothing accepted is dropped. flush() returns once everything submitted
// before it is committed: that is the acknowledgement. If a batch fails (disk full) the writer
// stops and every later call rethrows its error, so no caller believes unsaved data saved.
//
// Events submitted for a result (submit_for_result) are applied in a savepoint of their own:
// one that cannot apply (an unknown reference, a delete refused) fails alone and the batch
// goes on. Events of one run must be submitted in their seq order; one Store may be used from
// several threads.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "tracker/db/content.h"
#include "tracker/db/sqlite.h"
#include "tracker/store/sink.h"

namespace tracker {

class Store : public Sink {
 public:
  struct Options {
    size_t max_pending_points = 1u << 20;  // queued metric points at which submit() waits
    size_t batch_points = 50000;           // wake the writer at this many queued points
    int flush_interval_ms = 200;           // otherwise commit at least this often
  };

  // Opens (creating or upgrading) the database at `path`. Throws DbError.
  explicit Store(const std::string& path) : Store(path, Options{}) {}
  Store(const std::string& path, Options options);
  // Commits what is queued, then stops the writer.
  ~Store() override;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  void submit(Event event) override;
  std::future<Applied> submit_for_result(Event event) override;
  void flush() override;
  ContentStore& content() override { return content_; }

  // Submits `event` and waits for what it made; rethrows its failure.
  Applied apply(Event event) { return submit_for_result(std::move(event)).get(); }

  // Run `run_id`'s uid and the highest event seq applied to it, after a flush: where a
  // producer resuming the run goes on. Throws NotFound.
  struct RunPosition {
    std::string uid;
    uint64_t seq = 0;
  };
  RunPosition run_position(int64_t run_id);

 private:
  struct Queued {
    Event event;
    std::optional<std::promise<Applied>> result;
  };
  void enqueue(Queued queued);
  void writer_loop();
  void write_batch(std::vector<Queued>& batch);
  void check_error_locked() const;

  const std::string path_;
  const Options options_;
  std::unique_ptr<Db> db_;
  ContentStore content_;

  std::mutex mu_;
  std::condition_variable work_cv_, space_cv_, done_cv_;
  std::vector<Queued> queue_;
  size_t queued_points_ = 0;
  bool result_waiting_ = false;  // a queued event has a waiter: commit now
  uint64_t queued_ = 0, committed_ = 0;  // tickets: events queued / covered by a commit
  bool flush_requested_ = false, stopping_ = false;
  std::exception_ptr error_;
  std::thread writer_;
};

// Administrative artifact changes, applied as unsequenced events (artifact_alias,
// artifact_deleted) and waited for.
// Moves `alias` of artifact `name` to version vN. Throws NotFound.
ArtifactVersion set_alias(Store& store, const std::string& name, const std::string& alias, int64_t version);
// Deletes version `ref` ("NAME:vN" or "NAME:ALIAS") of an artifact, with its lineage rows, and
// removes from the content store each file no other version holds. Returns what was deleted.
// REQUIRES: no alias names the version ("latest", "best"): otherwise throws
// std::invalid_argument naming them, and nothing changes. Safe against another process logging
// a version with the same files at the same time (apply.h: MissingContent). Version numbers are
// not reused while the newest version (which "latest" names) is kept.
ArtifactVersion delete_artifact_version(Store& store, const std::string& ref);

}  // namespace tracker
