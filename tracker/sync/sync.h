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

// Throws DbError for an unusable database (foreign, newer, corrupt), std::runtime_error for a
// damaged artifact file. The target changes in one transaction: all or nothing (artifact
// files copied before a failure stay, unreferenced, in its content store).
SyncReport sync_databases(const std::string& from, const std::string& to);

}  // namespace tracker
