// Reading artifact versions from any connection to a tracker database: what tracker::Query
// and the store's writer (to resolve references and report what it made) share.
#pragma once

#include <cstdint>
#include <string>

#include "tracker/db/sqlite.h"
#include "tracker/events/artifact.h"

namespace tracker {

// The id of the version "NAME", "NAME:ALIAS" or "NAME:vN" names (NAME alone: its latest).
// Throws NotFound naming `ref` and the database.
int64_t resolve_artifact(Db& db, const std::string& ref);
// Version `id` with its aliases, files and users. Throws NotFound.
ArtifactVersion load_artifact_version(Db& db, int64_t id);

}  // namespace tracker
