// Merging one tracker database into another: `i3lab sync --from LOCAL.db --to OTHER.db`.
//
// Runs are matched by uid. Points, table rows, histograms and console lines missing from the
// target are added (where both hold a value for the same run, key and step, the target's is
// kept); run status follows the copy with the newer heartbeat. Artifact versions are matched
// by content digest and renumbered after the target's own; their files are copied and
// verified. Running it again adds nothing: the merge is idempotent.
#pragma once

#include <cstdint>
#include <string>

namespace tracker {

struct SyncReport {
  int64_t runs_added = 0, runs_updated = 0, points_added = 0, rows_added = 0;
  int64_t artifact_versions_added = 0, files_copied = 0;
};

// The source `from` is only read, never modified (not even its header or WAL): it must be an
// i3lab database with tables; one of an older schema is copied beside `to` (as
// TO.sync-source-XXXXXX), the copy upgraded and synced from, then removed, also on failure.
// `to` is created or upgraded as by any writer. (As any SQLite reader of a WAL database, the
// sync may leave an empty FROM-wal and a FROM-shm index beside the source.)
//
// Throws DbError naming the file for an unusable database (missing, empty or without tables
// as a source; foreign, newer, of an unknown version, corrupt), std::invalid_argument when both
// name the same file, std::runtime_error for a damaged artifact file. The target changes in
// one transaction: all or nothing (artifact files copied before a failure stay, unreferenced,
// in its content store). Artifact metadata that is not a JSON object in a damaged source
// arrives as {}.
SyncReport sync_databases(const std::string& from, const std::string& to);

// A run logged offline by the Python client (clients/python/i3lab_client.py, mode="offline"):
// a folder holding events.jsonl, one event per line in the JSON form of events.h, and
// files/SHA256 for the artifact files they name.
struct EventFolderReport {
  int64_t events_applied = 0, events_already_there = 0, events_skipped = 0, files_copied = 0;
};
// Applies the folder's events to `to` (created or upgraded) in order. Events carry their run's
// sequence numbers, so a second sync applies nothing. Throws std::invalid_argument naming the
// line for a malformed event (nothing of that line or later is applied),
// std::runtime_error naming the file for an artifact file that is missing or damaged,
// DbError for an unusable database. Events that cannot apply (naming what is not there) are
// skipped and counted in events_skipped.
EventFolderReport sync_event_folder(const std::string& folder, const std::string& to);

}  // namespace tracker
