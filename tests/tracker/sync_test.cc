// `i3lab sync --from SRC --to DST` only reads its source: the source's bytes (and its WAL) are
// the same afterwards, whether it is of the current schema, of an older one (synced from an
// upgraded temporary copy), or unusable, and no temporary copy is left behind.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "tests/i3lab_process.h"
#include "tracker/db/schema.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"
#include "tracker/sync/sync.h"

namespace fs = std::filesystem;

namespace tracker {
namespace {

// The bytes of a database and of its WAL ("" when there is none, or it is empty: a reader may
// leave an empty one, which holds nothing).
struct Snapshot {
  std::string db, wal;
  bool operator==(const Snapshot& o) const { return db == o.db && wal == o.wal; }
};
Snapshot snapshot(const std::string& path) { return {file_contents(path), file_contents(path + "-wal")}; }

// Temporary copies made for the target `path` ("PATH.sync-source-*", and their -wal, -shm).
std::vector<std::string> temp_copies(const std::string& path) {
  const std::string prefix = fs::path(path).filename().string() + ".sync-source-";
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(fs::path(path).parent_path()))
    if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
  return out;
}

// test_path() for a sync target, also removing copies a failed earlier run may have left.
std::string target_path(const std::string& name) {
  const std::string path = test_path(name);
  for (const auto& copy : temp_copies(path)) fs::remove(copy);
  return path;
}

int64_t scalar(const std::string& path, const std::string& sql) {
  auto db = open_database(path, OpenMode::kReadOnly);
  Stmt s(*db, sql.c_str());
  return s.step() ? s.int64(0) : -1;
}

// A source database of the current schema: a finished run with points, a table and an artifact.
std::string make_source(const std::string& path) {
  Store store(path);
  tracker::Run run = tracker::Run::create(store, {"p", "offline", "", {"laptop"}, "", {{"lr", 0.01}}});
  for (int step = 0; step < 100; ++step) run.log(step, {{"train/loss", 5.0 - step * 0.01}});
  run.log_table("samples", 10, {"prompt", "output"}, nlohmann::json::array({nlohmann::json::array({"a", "b"})}));
  const std::string file = test_path("ckpt.bin");
  write_file(file, "weights");
  run.log_artifact("ckpt", "checkpoint", file, {{"step", 99}});
  run.finish();
  return run.uid();
}

// A source database stopped at schema `version` (< current) holding one run with 3 points,
// written with SQL as that version's i3lab would have.
void make_old_source(const std::string& path, int version) {
  auto db = open_database(path, OpenMode::kReadWrite, version);
  db->exec(R"SQL(
    INSERT INTO projects(id, name) VALUES(1, 'old');
    INSERT INTO runs(id, uid, project_id, name, config, status, created_at, heartbeat_at, finished_at)
      VALUES(1, 'uid-old', 1, 'from v1', '{"lr": 0.5}', 'finished', 100, 200, 200);
    INSERT INTO metric_keys(id, name) VALUES(1, 'loss');
    INSERT INTO metrics(run_id, key_id, step, value, wall) VALUES(1, 1, 0, 3.0, 100), (1, 1, 1, 2.0, 101), (1, 1, 2, 1.0, 102);
    INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count) VALUES(1, 1, 1.0, 2, 1.0, 3.0, 3);
  )SQL");
}

TEST(SyncSource, ACurrentSourceAndItsLiveWalAreByteIdenticalAfterASync) {
  const std::string src = test_path("src.db"), dst = target_path("dst.db");
  const std::string uid = make_source(src);
  {
    // Nothing open: the source is one checkpointed file.
    const Snapshot before = snapshot(src);
    I3labResult r = i3lab({"sync", "--from", src, "--to", dst, "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["runs_added"], 1);
    EXPECT_EQ(nlohmann::json::parse(r.out)["points_added"], 100);
    EXPECT_TRUE(snapshot(src) == before) << "the source changed";
  }
  // A writer holds the source open with a commit still in its WAL (no checkpoint): the sync
  // sees the commit and leaves both files as they were.
  auto writer = open_database(src, OpenMode::kReadWrite);
  writer->exec("PRAGMA wal_autocheckpoint=0");
  writer->exec("UPDATE runs SET status = 'crashed', heartbeat_at = heartbeat_at + 1000");
  const Snapshot before = snapshot(src);
  ASSERT_FALSE(before.wal.empty());
  I3labResult r = i3lab({"sync", "--from", src, "--to", dst, "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["runs_updated"], 1);
  EXPECT_TRUE(snapshot(src) == before) << "the source or its WAL changed";
  EXPECT_EQ(Query(dst).runs().at(0).status, "crashed");
  EXPECT_EQ(Query(dst).runs().at(0).uid, uid);
  EXPECT_TRUE(temp_copies(dst).empty());
}

TEST(SyncSource, AnOlderSourceIsSyncedFromAnUpgradedCopyAndLeftAsItWas) {
  for (int version = 1; version < schema_version(); ++version) {
    SCOPED_TRACE("source schema " + std::to_string(version));
    const std::string src = test_path("old.db"), dst = target_path("dst.db");
    make_old_source(src, version);
    const Snapshot before = snapshot(src);
    I3labResult r = i3lab({"sync", "--from", src, "--to", dst, "--json"});
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(nlohmann::json::parse(r.out)["runs_added"], 1);
    EXPECT_EQ(nlohmann::json::parse(r.out)["points_added"], 3);
    EXPECT_TRUE(snapshot(src) == before) << "the source changed";
    EXPECT_EQ(scalar(src, "PRAGMA user_version"), version) << "the source was upgraded";
    EXPECT_TRUE(temp_copies(dst).empty());
    RunRecord run = Query(dst).runs().at(0);
    EXPECT_EQ(run.name, "from v1");
    EXPECT_EQ(run.config["lr"], 0.5);
    EXPECT_EQ(run.summary["loss"]["min"], 1.0);
    EXPECT_EQ(run.summary["loss"]["count"], 3);
    // Again: nothing new, and still nothing changed or left.
    EXPECT_EQ(nlohmann::json::parse(i3lab({"sync", "--from", src, "--to", dst, "--json"}).out)["points_added"], 0);
    EXPECT_TRUE(snapshot(src) == before);
    EXPECT_TRUE(temp_copies(dst).empty());
  }
}

TEST(SyncSource, AnEmptyOrTablelessSourceIsAnErrorAndStaysAsItWas) {
  const std::string src = test_path("empty.db"), dst = target_path("dst.db");
  write_file(src, "");
  I3labResult r = i3lab({"sync", "--from", src, "--to", dst});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(src + ": not an i3lab database (no tables)"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\n'), r.err.size() - 1) << "one line: " << r.err;
  EXPECT_EQ(fs::file_size(src), 0u);
  EXPECT_FALSE(fs::exists(dst)) << "the target is not created for an unusable source";
  for (const char* suffix : {"-wal", "-shm", "-journal"}) EXPECT_FALSE(fs::exists(src + suffix)) << suffix;
  EXPECT_TRUE(temp_copies(dst).empty());

  const std::string missing = test_path("missing.db");
  EXPECT_EQ(i3lab({"sync", "--from", missing, "--to", dst}).status, 1);
  EXPECT_FALSE(fs::exists(missing));
}

TEST(SyncSource, AFailureAfterTheCopyWasMadeLeavesNoCopyAndNoChange) {
  // An older source whose artifact version names a file its content store lacks: the sync
  // fails after the upgraded copy was made.
  const std::string src = test_path("old.db"), dst = target_path("dst.db");
  make_old_source(src, 2);
  {
    auto db = open_database(src, OpenMode::kReadWrite, 2);
    db->exec(R"SQL(
      INSERT INTO artifacts(id, name, type) VALUES(1, 'ckpt', 'checkpoint');
      INSERT INTO artifact_versions(id, artifact_id, version, digest, size, metadata, created_at)
        VALUES(1, 1, 0, 'd', 3, '{"a":', 100);
      INSERT INTO artifact_files(version_id, path, sha256, size)
        VALUES(1, 'w.bin', 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 3);
    )SQL");
  }
  const Snapshot before = snapshot(src);
  I3labResult r = i3lab({"sync", "--from", src, "--to", dst});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("artifact file missing"), std::string::npos) << r.err;
  EXPECT_TRUE(snapshot(src) == before);
  EXPECT_TRUE(temp_copies(dst).empty());
  EXPECT_TRUE(Query(dst).runs().empty()) << "the target changes all or nothing";
  EXPECT_THROW(sync_databases(src, dst), std::runtime_error);
  EXPECT_TRUE(temp_copies(dst).empty());
}

TEST(SyncSource, AFailureWhileCopyingLeavesNoCopy) {
  // An older source whose header and schema read fine but whose data pages are garbage: the
  // copy (VACUUM INTO) fails.
  const std::string src = test_path("old.db"), dst = target_path("dst.db");
  {
    auto db = open_database(src, OpenMode::kReadWrite, 2);
    db->exec("INSERT INTO projects(id, name) VALUES(1, 'p')");
    db->exec("WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) "
             "INSERT INTO console(run_id, seq, wall, stream, line) SELECT 1, i, 0, 'stdout', 'line ' || i FROM c");
    db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  std::string bytes = file_contents(src);
  ASSERT_GT(bytes.size(), 64u * 4096);
  for (size_t i = bytes.size() / 2 / 4096 * 4096; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5 ^ (i * 7));
  write_file(src, bytes);
  const Snapshot before = snapshot(src);
  EXPECT_NO_THROW(open_database(src, OpenMode::kReadOnly)) << "the header and schema must still read";
  I3labResult r = i3lab({"sync", "--from", src, "--to", dst});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(src), std::string::npos) << r.err;
  EXPECT_TRUE(snapshot(src) == before);
  EXPECT_TRUE(temp_copies(dst).empty()) << temp_copies(dst).front();
}

TEST(SyncSource, ArtifactMetadataThatIsNotAnObjectArrivesEmpty) {
  const std::string src = test_path("src.db"), dst = target_path("dst.db");
  make_source(src);
  open_database(src, OpenMode::kReadWrite)->exec("UPDATE artifact_versions SET metadata = '[1, 2'");
  EXPECT_EQ(Query(src).artifact("ckpt:v0").metadata, nlohmann::json::object()) << "read as {} too";
  I3labResult listed = i3lab({"artifacts", "--db", src, "--json"});
  ASSERT_EQ(listed.status, 0) << listed.err;
  EXPECT_EQ(nlohmann::json::parse(listed.out).at(0)["metadata"], nlohmann::json::object());
  ASSERT_EQ(i3lab({"sync", "--from", src, "--to", dst}).status, 0);
  ArtifactVersion v = Query(dst).artifact("ckpt:v0");
  EXPECT_EQ(v.metadata, nlohmann::json::object());
  EXPECT_EQ(v.files.size(), 1u);
}

}  // namespace
}  // namespace tracker
