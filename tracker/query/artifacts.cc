#include "tracker/query/artifacts.h"

#include <filesystem>
#include <optional>

#include "common/util/json.h"
#include "tracker/db/content.h"
#include "tracker/query/query.h"

namespace tracker {

int64_t resolve_artifact(Db& db, const std::string& ref) {
  const size_t colon = ref.rfind(':');
  const std::string name = ref.substr(0, colon);
  const std::string selector = colon == std::string::npos ? "latest" : ref.substr(colon + 1);
  const bool numbered = selector.size() > 1 && selector.size() < 19 && selector[0] == 'v' &&
                        selector.find_first_not_of("0123456789", 1) == std::string::npos;
  Stmt s(db, numbered ? "SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id "
                        "WHERE a.name = ? AND v.version = ?"
                      : "SELECT l.version_id FROM artifact_aliases l JOIN artifacts a ON a.id = l.artifact_id "
                        "WHERE a.name = ? AND l.alias = ?");
  s.bind(1, name);
  if (numbered) {
    s.bind(2, static_cast<int64_t>(std::stoll(selector.substr(1))));
  } else {
    s.bind(2, selector);
  }
  if (!s.step()) throw NotFound("no artifact " + ref + " in " + db.path());
  return s.int64(0);
}

ArtifactVersion load_artifact_version(Db& db, int64_t id) {
  Stmt v(db, "SELECT a.name, a.type, v.version, v.digest, v.size, v.metadata, coalesce(v.run_uid, ''), v.created_at "
             "FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id WHERE v.id = ?");
  v.bind(1, id);
  if (!v.step()) throw NotFound("no artifact version " + std::to_string(id) + " in " + db.path());
  ArtifactVersion out;
  out.id = id;
  out.name = v.text(0);
  out.type = v.text(1);
  out.version = v.int64(2);
  out.digest = v.text(3);
  out.size = v.int64(4);
  // Metadata that is not a JSON object (a damaged file) reads as {}, as sync brings it over.
  std::optional<nlohmann::json> metadata = util::try_parse_json(v.text(5));
  out.metadata = metadata && metadata->is_object() ? std::move(*metadata) : nlohmann::json::object();
  out.run_uid = v.text(6);
  out.created_at = v.real(7);
  Stmt aliases(db, "SELECT alias FROM artifact_aliases WHERE version_id = ? ORDER BY alias");
  aliases.bind(1, id);
  while (aliases.step()) out.aliases.push_back(aliases.text(0));
  Stmt files(db, "SELECT path, sha256, size FROM artifact_files WHERE version_id = ? ORDER BY path");
  files.bind(1, id);
  while (files.step()) out.files.push_back({files.text(0), files.text(1), files.int64(2)});
  Stmt users(db, "SELECT run_uid FROM artifact_usage WHERE version_id = ? ORDER BY run_uid");
  users.bind(1, id);
  while (users.step()) out.used_by.push_back(users.text(0));
  return out;
}

ArtifactVersion Query::artifact(const std::string& ref) { return load_artifact_version(*db_, resolve_artifact(*db_, ref)); }

std::vector<ArtifactVersion> Query::artifacts(const std::string& name) {
  std::vector<int64_t> ids;
  Stmt s(*db_, "SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id "
               "WHERE ?1 = '' OR a.name = ?1 ORDER BY a.name, v.version");
  s.bind(1, name);
  while (s.step()) ids.push_back(s.int64(0));
  std::vector<ArtifactVersion> out;
  for (int64_t id : ids) out.push_back(load_artifact_version(*db_, id));
  return out;
}

std::vector<ArtifactVersion> Query::run_artifacts(const std::string& run_uid) {
  std::vector<int64_t> ids;
  Stmt s(*db_, "SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id "
               "WHERE v.run_uid = ?1 OR v.id IN (SELECT version_id FROM artifact_usage WHERE run_uid = ?1) "
               "ORDER BY a.name, v.version");
  s.bind(1, run_uid);
  while (s.step()) ids.push_back(s.int64(0));
  std::vector<ArtifactVersion> out;
  for (int64_t id : ids) out.push_back(load_artifact_version(*db_, id));
  return out;
}

void Query::fetch_artifact(const ArtifactVersion& version, const std::string& dest) {
  const std::string label = version.name + ":v" + std::to_string(version.version);
  const ContentStore content(db_->path());
  for (const auto& file : version.files) {
    const std::filesystem::path relative(file.path);
    if (relative.is_absolute() || file.path.find("..") != std::string::npos)
      throw std::runtime_error(label + ": refusing file path '" + file.path + "'");
    content.fetch(file, (std::filesystem::path(dest) / relative).string(), label);
  }
}

}  // namespace tracker
