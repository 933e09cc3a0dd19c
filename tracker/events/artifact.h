// What an artifact version is: plain values shared by the events that make versions, the store
// that numbers them and the queries that read them (docs/tracker.md).
//
// A version is a set of files (relative path → SHA-256 of the bytes, size) plus metadata; its
// digest is the SHA-256 of that manifest, so equal content is the same version. Versions of an
// artifact count v0, v1, …; aliases ("latest", "best") name one version each.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tracker {

struct ArtifactFile {
  std::string path;  // relative, '/'-separated
  std::string sha256;
  int64_t size = 0;
  bool operator==(const ArtifactFile& o) const { return path == o.path && sha256 == o.sha256 && size == o.size; }
};

// The digest of a version holding `files` (in path order).
std::string manifest_digest(const std::vector<ArtifactFile>& files);

struct ArtifactVersion {
  int64_t id = 0;       // in one database
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

}  // namespace tracker
