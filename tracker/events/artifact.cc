#include "tracker/events/artifact.h"

#include "common/util/sha256.h"

namespace tracker {

std::string manifest_digest(const std::vector<ArtifactFile>& files) {
  nlohmann::json manifest = nlohmann::json::array();
  for (const auto& f : files) manifest.push_back({f.path, f.sha256, f.size});
  return util::sha256_hex(manifest.dump());
}

nlohmann::json ArtifactVersion::to_json() const {
  nlohmann::json files_json = nlohmann::json::array();
  for (const auto& f : files) files_json.push_back({{"path", f.path}, {"sha256", f.sha256}, {"size", f.size}});
  return {{"name", name},         {"type", type},         {"version", "v" + std::to_string(version)},
          {"digest", digest},     {"size", size},         {"metadata", metadata},
          {"run_uid", run_uid},   {"created_at", created_at}, {"aliases", aliases},
          {"files", files_json},  {"used_by", used_by}};
}

}  // namespace tracker
