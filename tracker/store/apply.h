// Applying events to a tracker database: the one path by which anything is written into it.
//
// An Applier works inside a write transaction its caller owns (the Store's writer thread, sync,
// or the coordinator's group commit) and applies events in the order given. In a database
// marked for relay (tracker/relay/relay.h) it also appends each sequenced event it applies to
// the relay log, in the same transaction. Per run it checks the event's sequence number
// against the highest the database has applied (runs.event_seq) and skips what it has seen.
// Metric points are buffered and written sorted by (run, key, step), with the summaries and
// downsampling tiers they change, in one pass per batch; an event that must see them first (a
// rewind) writes them before itself.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tracker/db/content.h"
#include "tracker/db/sqlite.h"
#include "tracker/events/events.h"
#include "tracker/store/sink.h"

namespace tracker {

// An artifact_logged event names a file its receiver's content store lacks: the producer must
// put the file there (ContentStore::put) and send the event again. Also what a producer sees
// when another process deleted a file it had found stored a moment before.
struct MissingContent : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The transaction an event was being applied in can no longer be trusted (SQLite rolled it back
// on a full disk or an I/O error, or an event's writes could not be undone): the caller fails
// the whole batch rather than go on.
struct TransactionLost : DbError {
  using DbError::DbError;
};

class Applier {
 public:
  Applier(Db& db, const ContentStore& content) : db_(db), content_(content) {}

  // Applies `event` (or reports it a duplicate). Throws, having changed none of its own state,
  // for an event that cannot apply: NotFound (an unknown run or artifact reference),
  // std::invalid_argument (an alias still on a version to delete, a type clash),
  // MissingContent; the caller rolls its database changes back (a savepoint).
  Applied apply(const Event& event);
  // apply() for an event among others in one transaction: when it throws, the database is as it
  // was before the event and the others stand. Throws what apply() throws, or TransactionLost.
  Applied apply_isolated(const Event& event);
  // Lets the artifact_logged events applied next (until the next call) name these files
  // although the content store lacks them: for a relay whose producer has deleted the version
  // since (its later events delete it here too), so that version numbers stay the same on both
  // sides.
  void accept_missing(const std::vector<std::string>& sha256s) { gone_ = {sha256s.begin(), sha256s.end()}; }
  // Writes the buffered points and each touched run's event_seq: call before committing.
  void finish_batch();
  // After the transaction committed: removes the files of deleted versions from the content
  // store. After it rolled back: puts them back and forgets what it cached.
  void committed();
  void rolled_back();
 private:
  // Writes the buffered metric points. Before a savepoint, so a rollback cannot lose them.
  void write_points();
  // After a savepoint rolled back: forgets cached metric key ids (they may be gone).
  void forget_keys() {
    key_ids_.clear();
    last_keys_.clear();
  }
  struct RunState {
    int64_t id = 0;
    uint64_t seq = 0;  // highest applied
    bool dirty = false;
  };
  struct Point {
    int64_t run_id, key_id, step;
    double value, wall;
  };
  RunState* find_run(const std::string& uid);
  int64_t key_id(const std::string& name);
  int64_t run_id_of(const Event& event);
  void rewind(int64_t run_id, int64_t step);
  ArtifactVersion log_artifact(const std::string& run_uid, const ArtifactLogged& e);
  ArtifactVersion delete_artifact(const std::string& ref);
  bool relaying();  // this database keeps a relay log


  Db& db_;
  const ContentStore& content_;
  std::map<std::string, RunState, std::less<>> runs_;      // this batch's runs by uid
  std::pair<const std::string, RunState>* last_run_ = nullptr;  // the last one found
  std::map<std::string, int64_t, std::less<>> key_ids_;    // metric key → metric_keys.id
  std::vector<std::pair<std::string, int64_t>> last_keys_; // the last metrics event's keys and ids
  std::vector<Point> points_;
  std::vector<std::pair<std::string, std::string>> moved_;  // deleted files: sha256, where they wait
  int relay_ = -1;  // relaying(): -1 not looked up yet
  std::set<std::string, std::less<>> gone_;  // accept_missing()
};

// Recomputes run `run_id`'s downsampling tiers and summaries from its points (keeping each
// summary's goal). For changes that bypass the point buffer: rewinds and merges.
void rebuild_aggregates(Db& db, int64_t run_id);

}  // namespace tracker
