#include "tracker/store/artifacts.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>

#include "common/util/clock.h"
#include "common/util/sha256.h"
#include "tracker/db/schema.h"

namespace fs = std::filesystem;

namespace tracker {
namespace {

fs::path content_path(const std::string& db_path, const std::string& sha) {
  return fs::path(artifact_root(db_path)) / "sha256" / sha.substr(0, 2) / sha.substr(2);
}

std::string temp_name(const fs::path& dir) {
  static std::mt19937_64 gen(std::random_device{}() ^ static_cast<uint64_t>(::getpid()));
  return (dir / ("tmp-" + std::to_string(gen()))).string();
}

// Copies `from` into a new temporary file in `dir`, hashing the bytes on the way.
struct Copied {
  std::string tmp, sha;
  uint64_t size = 0;
};
Copied copy_to_temp(const std::string& from, const fs::path& dir) {
  fs::create_directories(dir);
  Copied c{temp_name(dir), "", 0};
  std::ifstream in(from, std::ios::binary);
  if (!in) throw std::runtime_error(from + ": cannot open");
  std::ofstream out(c.tmp, std::ios::binary | std::ios::trunc);
  if (!out) throw std::runtime_error(c.tmp + ": cannot write");
  util::Sha256 h;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    h.update(buf, static_cast<size_t>(in.gcount()));
    out.write(buf, in.gcount());
    c.size += static_cast<uint64_t>(in.gcount());
  }
  if (in.bad() || !out.flush()) {
    fs::remove(c.tmp);
    throw std::runtime_error(from + ": copy failed (disk full?)");
  }
  c.sha = h.hex();
  return c;
}

// Puts one file into the content store; the stored copy is named by its hash. Concurrent
// writers of the same content each rename a complete copy into place: the result is the same.
ArtifactFile store_file(const std::string& db_path, const std::string& source, const std::string& relative) {
  Copied c = copy_to_temp(source, fs::path(artifact_root(db_path)) / "staging");
  const fs::path final_path = content_path(db_path, c.sha);
  if (fs::exists(final_path)) {
    fs::remove(c.tmp);
  } else {
    fs::create_directories(final_path.parent_path());
    fs::rename(c.tmp, final_path);
  }
  return {relative, c.sha, static_cast<int64_t>(c.size)};
}

void check_artifact_name(const std::string& what, const std::string& name) {
  if (name.empty() || name.size() > kMaxNameBytes || name.find(':') != std::string::npos)
    throw std::invalid_argument(what + " '" + name + "' must be 1.." + std::to_string(kMaxNameBytes) +
                                " bytes without ':'");
}

ArtifactVersion load_version(Db& db, int64_t id) {
  Stmt v(db, "SELECT a.name, a.type, v.version, v.digest, v.size, v.metadata, coalesce(v.run_uid, ''), v.created_at "
             "FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id WHERE v.id = ?");
  v.bind(1, id);
  if (!v.step()) throw std::invalid_argument("no artifact version " + std::to_string(id));
  ArtifactVersion out;
  out.id = id;
  out.name = v.text(0);
  out.type = v.text(1);
  out.version = v.int64(2);
  out.digest = v.text(3);
  out.size = v.int64(4);
  out.metadata = nlohmann::json::parse(v.text(5), nullptr, false);
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

// "NAME", "NAME:ALIAS" or "NAME:vN" → version id. Throws std::invalid_argument.
int64_t resolve(Db& db, const std::string& ref) {
  const size_t colon = ref.rfind(':');
  const std::string name = ref.substr(0, colon);
  const std::string selector = colon == std::string::npos ? "latest" : ref.substr(colon + 1);
  const bool numbered = selector.size() > 1 && selector[0] == 'v' &&
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
  if (!s.step()) throw std::invalid_argument("no artifact " + ref + " in " + db.path());
  return s.int64(0);
}

void move_alias(Db& db, int64_t artifact_id, const std::string& alias, int64_t version_id) {
  Stmt s(db, "INSERT OR REPLACE INTO artifact_aliases(artifact_id, alias, version_id) VALUES(?, ?, ?)");
  s.bind(1, artifact_id).bind(2, alias).bind(3, version_id).run();
}

}  // namespace

nlohmann::json ArtifactVersion::to_json() const {
  nlohmann::json files_json = nlohmann::json::array();
  for (const auto& f : files) files_json.push_back({{"path", f.path}, {"sha256", f.sha256}, {"size", f.size}});
  return {{"name", name},         {"type", type},         {"version", "v" + std::to_string(version)},
          {"digest", digest},     {"size", size},         {"metadata", metadata},
          {"run_uid", run_uid},   {"created_at", created_at}, {"aliases", aliases},
          {"files", files_json},  {"used_by", used_by}};
}

std::string artifact_root(const std::string& db_path) { return db_path + ".artifacts"; }

ArtifactVersion log_artifact(Store& store, const std::string& run_uid, const std::string& name, const std::string& type,
                             const std::string& path, const nlohmann::json& metadata,
                             const std::vector<std::string>& aliases) {
  check_artifact_name("artifact name", name);
  check_artifact_name("artifact type", type);
  for (const auto& a : aliases) check_artifact_name("alias", a);
  const std::string metadata_text = metadata.is_null() ? "{}" : metadata.dump();
  if (!(metadata.is_object() || metadata.is_null()) || metadata_text.size() > kMaxJsonBytes)
    throw std::invalid_argument("artifact metadata must be a JSON object under the size limit");

  std::vector<std::pair<std::string, std::string>> sources;  // relative path, file
  if (fs::is_directory(path)) {
    for (const auto& entry : fs::recursive_directory_iterator(path))
      if (entry.is_regular_file()) sources.emplace_back(fs::relative(entry.path(), path).generic_string(), entry.path().string());
    std::sort(sources.begin(), sources.end());
    if (sources.empty()) throw std::invalid_argument(path + ": an empty folder is not an artifact");
  } else if (fs::is_regular_file(path)) {
    sources.emplace_back(fs::path(path).filename().string(), path);
  } else {
    throw std::invalid_argument(path + ": no such file or folder");
  }
  std::vector<ArtifactFile> files;  // parallel to `sources`
  nlohmann::json manifest = nlohmann::json::array();
  int64_t total = 0;
  for (const auto& [relative, source] : sources) {
    files.push_back(store_file(store.path(), source, relative));
    manifest.push_back({files.back().path, files.back().sha256, files.back().size});
    total += files.back().size;
  }
  const std::string digest = util::sha256_hex(manifest.dump());

  ArtifactVersion result;
  store.execute([&](Db& db) {
    Stmt ins(db, "INSERT OR IGNORE INTO artifacts(name, type) VALUES(?, ?)");
    ins.bind(1, name).bind(2, type).run();
    Stmt find(db, "SELECT id, type FROM artifacts WHERE name = ?");
    find.bind(1, name);
    if (!find.step()) db.fail("artifact vanished");
    const int64_t artifact_id = find.int64(0);
    if (find.text(1) != type)
      throw std::invalid_argument("artifact '" + name + "' has type '" + find.text(1) + "', not '" + type + "'");
    Stmt same(db, "SELECT id FROM artifact_versions WHERE artifact_id = ? AND digest = ?");
    same.bind(1, artifact_id).bind(2, digest);
    int64_t version_id;
    if (same.step()) {
      version_id = same.int64(0);  // unchanged content: no new version
    } else {
      Stmt v(db, "INSERT INTO artifact_versions(artifact_id, version, digest, size, metadata, run_uid, created_at) "
                 "VALUES(?1, (SELECT coalesce(max(version) + 1, 0) FROM artifact_versions WHERE artifact_id = ?1), ?2, ?3, ?4, ?5, ?6)");
      v.bind(1, artifact_id).bind(2, digest).bind(3, total).bind(4, metadata_text);
      if (run_uid.empty()) {
        v.bind_null(5);
      } else {
        v.bind(5, run_uid);
      }
      v.bind(6, util::unix_time()).run();
      version_id = sqlite3_last_insert_rowid(db.handle());
      Stmt f(db, "INSERT INTO artifact_files(version_id, path, sha256, size) VALUES(?, ?, ?, ?)");
      for (size_t i = 0; i < files.size(); ++i) {
        const ArtifactFile& file = files[i];
        // A concurrent delete_artifact_version may have removed a stored copy we found in
        // place before this transaction; deletes run inside write transactions, so now it
        // stays put.
        if (!fs::exists(content_path(store.path(), file.sha256))) {
          const ArtifactFile again = store_file(store.path(), sources[i].second, file.path);
          if (again.sha256 != file.sha256)
            throw std::runtime_error(sources[i].second + ": changed while it was being stored");
        }
        f.bind(1, version_id).bind(2, file.path).bind(3, file.sha256).bind(4, file.size).run();
      }
      move_alias(db, artifact_id, "latest", version_id);
    }
    for (const auto& a : aliases) move_alias(db, artifact_id, a, version_id);
    result = load_version(db, version_id);
  });
  return result;
}

void set_alias(Store& store, const std::string& name, const std::string& alias, int64_t version) {
  check_artifact_name("alias", alias);
  store.execute([&](Db& db) {
    const int64_t id = resolve(db, name + ":v" + std::to_string(version));
    Stmt a(db, "SELECT artifact_id FROM artifact_versions WHERE id = ?");
    a.bind(1, id);
    a.step();
    move_alias(db, a.int64(0), alias, id);
  });
}

ArtifactVersion use_artifact(Store& store, const std::string& run_uid, const std::string& ref) {
  ArtifactVersion result;
  store.execute([&](Db& db) {
    const int64_t id = resolve(db, ref);
    if (!run_uid.empty()) {
      Stmt u(db, "INSERT OR IGNORE INTO artifact_usage(run_uid, version_id) VALUES(?, ?)");
      u.bind(1, run_uid).bind(2, id).run();
    }
    result = load_version(db, id);
  });
  return result;
}

ArtifactVersion delete_artifact_version(Store& store, const std::string& ref) {
  ArtifactVersion gone;
  // Unreferenced stored files are moved aside inside the transaction (so no writer can see
  // them present and then lose them) and removed once it has committed.
  std::vector<std::pair<fs::path, fs::path>> moved;  // stored path, trash path
  const fs::path trash_dir = fs::path(artifact_root(store.path())) / "staging";
  try {
    store.execute([&](Db& db) {
      const int64_t id = resolve(db, ref);
      gone = load_version(db, id);
      const std::string label = gone.name + ":v" + std::to_string(gone.version);
      if (!gone.aliases.empty()) {
        std::string names;
        for (const auto& a : gone.aliases) names += (names.empty() ? "" : ", ") + a;
        throw std::invalid_argument(label + " is still " + names + "; move the alias to another version before deleting it");
      }
      for (const char* sql : {"DELETE FROM artifact_files WHERE version_id = ?", "DELETE FROM artifact_usage WHERE version_id = ?",
                              "DELETE FROM artifact_versions WHERE id = ?"}) {
        Stmt d(db, sql);
        d.bind(1, id).run();
      }
      Stmt held(db, "SELECT 1 FROM artifact_files WHERE sha256 = ? LIMIT 1");
      fs::create_directories(trash_dir);
      for (const auto& file : gone.files) {
        held.bind(1, file.sha256);
        const bool still_held = held.step();
        held.reset();
        const fs::path stored = content_path(store.path(), file.sha256);
        if (still_held || !fs::exists(stored)) continue;
        const fs::path trash = temp_name(trash_dir);
        fs::rename(stored, trash);
        moved.emplace_back(stored, trash);
      }
    });
  } catch (...) {
    std::error_code ignored;
    for (const auto& [stored, trash] : moved)
      if (!fs::exists(stored)) fs::rename(trash, stored, ignored);
    throw;
  }
  std::error_code ignored;
  for (const auto& m : moved) fs::remove(m.second, ignored);
  return gone;
}

ArtifactVersion find_artifact(const std::string& db_path, const std::string& ref) {
  auto db = open_database(db_path, OpenMode::kReadOnly);
  return load_version(*db, resolve(*db, ref));
}

std::vector<ArtifactVersion> list_artifacts(const std::string& db_path) {
  auto db = open_database(db_path, OpenMode::kReadOnly);
  std::vector<int64_t> ids;
  Stmt s(*db, "SELECT v.id FROM artifact_versions v JOIN artifacts a ON a.id = v.artifact_id ORDER BY a.name, v.version");
  while (s.step()) ids.push_back(s.int64(0));
  std::vector<ArtifactVersion> out;
  for (int64_t id : ids) out.push_back(load_version(*db, id));
  return out;
}

bool copy_stored_file(const std::string& from_db, const std::string& to_db, const std::string& sha) {
  const fs::path target = content_path(to_db, sha), source = content_path(from_db, sha);
  if (fs::exists(target)) return false;
  if (!fs::exists(source)) throw std::runtime_error(source.string() + ": artifact file missing");
  Copied c = copy_to_temp(source.string(), target.parent_path());
  if (c.sha != sha) {
    fs::remove(c.tmp);
    throw std::runtime_error(source.string() + ": damaged artifact file (its sha256 does not match its name)");
  }
  fs::rename(c.tmp, target);
  return true;
}

void fetch_artifact(const std::string& db_path, const ArtifactVersion& version, const std::string& dest) {
  const std::string label = version.name + ":v" + std::to_string(version.version);
  for (const auto& file : version.files) {
    const fs::path relative(file.path);
    if (relative.is_absolute() || file.path.find("..") != std::string::npos)
      throw std::runtime_error(label + ": refusing file path '" + file.path + "'");
    const fs::path stored = content_path(db_path, file.sha256);
    if (!fs::exists(stored)) throw std::runtime_error(label + ": file " + file.path + " is missing from " + artifact_root(db_path));
    const fs::path target = fs::path(dest) / relative;
    Copied c = copy_to_temp(stored.string(), target.parent_path());
    if (c.sha != file.sha256) {
      fs::remove(c.tmp);
      throw std::runtime_error(label + ": file " + file.path + " is damaged in " + artifact_root(db_path) +
                               " (sha256 " + c.sha + ", expected " + file.sha256 + ")");
    }
    fs::rename(c.tmp, target);
  }
}

}  // namespace tracker
