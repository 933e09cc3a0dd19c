// A run moving between a job's database on a worker and its coordinator's database.
//
// Relay log. A job writes its run into a database of its own on its worker, durable at once and
// identical to an offline `i3lab train`. When that database is marked for relay, every
// sequenced event applied to it is also appended, in the same transaction, to its relay log as
// its JSON form (events.h), numbered 1, 2, 3, … in the order applied; duplicates and
// unsequenced events are not logged. The worker reads what is new (read_relay_log) and sends it
// on; the coordinator applies it through its own Applier, which skips what it has seen by seq,
// and acknowledges the highest relay number it stored. A replay after a reconnect loses nothing
// and applies nothing twice.
//
// Seeds. A training job that resumes on another machine needs its run there: export_run_seed
// gives the run as the coordinator holds it (its row with the event sequence reached, its
// metric summaries, and every version of the artifacts it produced, files listed but not
// included) as JSON, and import_run_seed makes a new relay database of it. In that database
// `i3lab train --resume ID` continues the run's event sequence where the coordinator's copy
// stands, and artifact versions keep their numbers, so the versions and refs ("NAME:v7") it
// logs and deletes mean the same on both sides. The artifact files to resume from are fetched
// separately into the new database's content store.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tracker/db/sqlite.h"

namespace tracker {

// Marks the database at `path` (created if missing) for relay. Throws DbError.
void create_relay_database(const std::string& path);

struct RelayEntry {
  int64_t id = 0;
  std::string event;  // JSON text
};

// Relay log entries after `after`, in order, at most `max_entries` and about `max_bytes` of
// JSON (always the next one, if there is one, however large).
std::vector<RelayEntry> read_relay_log(Db& db, int64_t after, size_t max_entries, size_t max_bytes);
// The newest relay log entry's number; 0 when the log is empty.
int64_t relay_log_end(Db& db);

// Run `uid` of `db` as a seed (above). Throws NotFound for an unknown run.
//   {"run": {id, uid, project, name, group, tags, notes, config, status, created_at,
//            heartbeat_at, finished_at (or null), event_seq},
//    "summaries": [{key, last, last_step, min, max, count, goal}],   (NaN as null)
//    "artifacts": [{name, type, versions: [{version, digest, size, metadata, run_uid (or null),
//                   created_at, files: [{path, sha256, size}]}], aliases: {ALIAS: version}}]}
nlohmann::json export_run_seed(Db& db, const std::string& uid);

// Creates the relay database `path` (which must not exist) holding `seed`; returns the run's id
// there (the one it had where it was exported). Throws std::invalid_argument naming the field
// for a seed not of the form above, DbError for the file.
int64_t import_run_seed(const std::string& path, const nlohmann::json& seed);

}  // namespace tracker
