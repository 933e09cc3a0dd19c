// The tracker's storage layer: one database file, one writer thread.
//
// Callers never wait on disk I/O: metric points are appended to an in-memory buffer (a few
// hundred nanoseconds) and a writer thread commits them in batched transactions, keeping
// each run's per-key summary and downsampling tiers current at the same time. Other writes
// (tables, histograms, console lines, status) are queued closures run by the same thread.
// A full buffer makes log calls wait (back-pressure): nothing accepted is dropped.
// flush() returns once everything queued before it is committed: that is the acknowledgement.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "tracker/db/sqlite.h"

namespace tracker {

// Bucket widths (in steps) of the downsampling tiers, finest first.
constexpr int64_t kTierWidths[] = {16, 256, 4096, 65536};
// The tier bucket holding `step`: floor(step / width), also for negative steps.
inline int64_t bucket_of(int64_t step, int64_t width) { return step >= 0 ? step / width : -((-step + width - 1) / width); }

// Limits on what callers may store; longer input throws std::invalid_argument.
constexpr size_t kMaxNameBytes = 256;          // metric keys, run, project, table and artifact names
constexpr size_t kMaxJsonBytes = 4u << 20;     // a config, a table, metadata
constexpr size_t kMaxLineBytes = 64u << 10;    // a console line

// Recomputes run `run_id`'s downsampling tiers and summaries from its points (keeping each
// summary's goal). For changes that bypass log_points: rewinds and merges.
void rebuild_aggregates(Db& db, int64_t run_id);

class Store {
 public:
  struct Options {
    size_t max_pending_points = 1u << 20;  // buffer size at which log calls wait
    size_t batch_points = 50000;           // wake the writer at this many pending points
    int flush_interval_ms = 200;           // otherwise commit at least this often
  };

  // Opens (creating or upgrading) the database at `path`. Throws DbError.
  explicit Store(const std::string& path) : Store(path, Options{}) {}
  Store(const std::string& path, Options options);
  // Commits what is pending, then stops the writer.
  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  const std::string& path() const { return path_; }

  // Queues points of one step; wall is unix seconds. NaN and ±inf are kept (NaN as NULL).
  // Blocks only while the buffer is full. Throws the writer's error if it has failed, and
  // std::invalid_argument for a key over kMaxNameBytes or empty.
  void log_points(int64_t run_id, int64_t step, double wall,
                  const std::pair<std::string_view, double>* values, size_t count);

  // Queues a write to run on the writer thread in the next transaction.
  void enqueue(std::function<void(Db&)> write);
  // Runs `write` on the writer thread in its own transaction and waits for it; rethrows.
  void execute(const std::function<void(Db&)>& write);
  // Waits until everything queued before the call is committed. Rethrows a writer error.
  void flush();

  // The id of metric key `name` in this database (creating it). Writer thread only.
  int64_t key_id(Db& db, std::string_view name);

 private:
  struct Point {
    int64_t run_id;
    int64_t step;
    double value;
    double wall;
    uint32_t key;  // index into names_
  };
  void writer_loop();
  void write_batch(std::vector<Point>& points, std::vector<std::function<void(Db&)>>& writes);
  void check_error_locked() const;

  const std::string path_;
  const Options options_;
  std::unique_ptr<Db> db_;

  std::mutex mu_;
  std::condition_variable work_cv_, space_cv_, done_cv_;
  std::vector<Point> points_;
  std::vector<std::function<void(Db&)>> writes_;
  std::map<std::string, uint32_t, std::less<>> interned_;  // key name → index
  std::vector<std::string> names_;
  uint64_t queued_ = 0, committed_ = 0;  // tickets: calls queued / covered by a commit
  bool flush_requested_ = false, stopping_ = false;
  std::exception_ptr error_;

  std::map<std::string, int64_t, std::less<>> key_ids_;  // writer thread: name → metric_keys.id
  std::thread writer_;
};

}  // namespace tracker
