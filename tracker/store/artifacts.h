// Artifacts: versioned, content-addressed files — checkpoints, model folders, datasets.
//
// Each file's bytes are stored once, under DB.artifacts/sha256/AB/CDEF… (named by the SHA-256
// of the content), next to the database file DB; the database holds the versions. A version
// is a set of files (relative path → sha256, size) plus metadata; its digest is the SHA-256
// of that manifest. Logging content equal to an existing version returns that version instead
// of making a new one. Versions count v0, v1, …; the alias "latest" moves to each new version;
// other aliases ("best") are set by callers and name one version of an artifact at a time.
// Lineage: each version records the run that logged it, and use_artifact() records the runs
// that used it. Reading a file back re-hashes it: a damaged file is an error, never data.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tracker/store/store.h"

namespace tracker {

struct ArtifactFile {
  std::string path;    // relative, '/'-separated
  std::string sha256;
  int64_t size = 0;
};

struct ArtifactVersion {
  int64_t id = 0;
  std::string name, type;
  int64_t version = 0;  // the N of "vN"
  std::string digest;
  int64_t size = 0;     // bytes over all files
  nlohmann::json metadata;
  std::string run_uid;  // the run that logged it ("" if none)
  double created_at = 0;
  std::vector<std::string> aliases;
  std::vector<ArtifactFile> files;
  std::vector<std::string> used_by;  // run uids
  nlohmann::json to_json() const;
};

// The content store's folder for the database at `db_path`.
std::string artifact_root(const std::string& db_path);

// Stores the file or folder at `path` (a folder: every regular file below it, recursively)
// as a version of artifact `name`, and returns it. `metadata` is a JSON object (null: none). `aliases` are moved to that version.
// Throws std::invalid_argument for bad names, a type that differs from the artifact's, or an
// empty folder; std::runtime_error for unreadable files.
ArtifactVersion log_artifact(Store& store, const std::string& run_uid, const std::string& name, const std::string& type,
                             const std::string& path, const nlohmann::json& metadata = nlohmann::json::object(),
                             const std::vector<std::string>& aliases = {});

// Moves `alias` of artifact `name` to version `version`.
void set_alias(Store& store, const std::string& name, const std::string& alias, int64_t version);

// Deletes version `ref` ("NAME:vN" or "NAME:ALIAS") of an artifact, with its lineage rows, and
// removes from the content store each file no other version holds. Returns what was deleted.
// REQUIRES: the version has no aliases (it is not "latest" or "best"): otherwise throws
// std::invalid_argument naming them, and nothing changes. Safe against another process
// logging a version with the same files at the same time (log_artifact re-stores a file it
// finds missing inside its transaction). Version numbers are not reused while the newest
// version (which "latest" names) is kept.
ArtifactVersion delete_artifact_version(Store& store, const std::string& ref);

// Resolves "NAME:ALIAS" or "NAME:vN" (or "NAME", meaning latest) and, if `run_uid` is not
// empty, records that run as a user of it. Throws std::invalid_argument if nothing matches.
ArtifactVersion use_artifact(Store& store, const std::string& run_uid, const std::string& ref);

// Read-only lookups (own connection).
ArtifactVersion find_artifact(const std::string& db_path, const std::string& ref);
std::vector<ArtifactVersion> list_artifacts(const std::string& db_path);

// Copies the stored file with content `sha256` from the content store of `from_db` to that of
// `to_db`, verifying it on the way (one read). Returns false if `to_db` already has it. Throws
// std::runtime_error if the source copy is missing or damaged.
bool copy_stored_file(const std::string& from_db, const std::string& to_db, const std::string& sha256);

// Copies a version's files into folder `dest` (created), verifying each file's SHA-256.
// Throws std::runtime_error naming the file if one is missing or damaged.
void fetch_artifact(const std::string& db_path, const ArtifactVersion& version, const std::string& dest);

}  // namespace tracker
