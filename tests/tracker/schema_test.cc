// The database file: creation, upgrade in place, and refusal (untouched) of files that are not
// ours or are newer.
#include "tracker/db/schema.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include "tests/test_paths.h"

#include <climits>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

namespace tracker {
namespace {

int64_t pragma(Db& db, const char* sql) {
  Stmt s(db, sql);
  return s.step() ? s.int64(0) : -1;
}

std::string open_error(const std::string& path, OpenMode mode = OpenMode::kReadWrite) {
  try {
    open_database(path, mode);
  } catch (const DbError& e) {
    return e.what();
  }
  return "";
}

TEST(TrackerSchema, CreatesWalDatabaseWithCurrentSchema) {
  const std::string path = test_path("new.db");
  {
    auto db = open_database(path, OpenMode::kReadWrite);
    EXPECT_EQ(pragma(*db, "PRAGMA user_version"), schema_version());
    EXPECT_EQ(pragma(*db, "PRAGMA application_id"), kApplicationId);
    Stmt mode(*db, "PRAGMA journal_mode");
    ASSERT_TRUE(mode.step());
    EXPECT_EQ(mode.text(0), "wal");
  }
  auto again = open_database(path, OpenMode::kReadWrite);  // reopening changes nothing
  EXPECT_EQ(pragma(*again, "PRAGMA user_version"), schema_version());
}

TEST(TrackerSchema, UpgradesAnOlderFileInPlaceKeepingData) {
  const std::string path = test_path("old.db");
  {
    auto db = open_database(path, OpenMode::kReadWrite, /*max_version=*/1);
    EXPECT_EQ(pragma(*db, "PRAGMA user_version"), 1);
    db->exec("INSERT INTO projects(name) VALUES('kept')");
    EXPECT_THROW(db->exec("SELECT * FROM artifacts"), DbError);  // migration 2 not applied yet
  }
  auto db = open_database(path, OpenMode::kReadWrite);
  EXPECT_EQ(pragma(*db, "PRAGMA user_version"), schema_version());
  EXPECT_EQ(pragma(*db, "SELECT count(*) FROM projects WHERE name = 'kept'"), 1);
  EXPECT_EQ(pragma(*db, "SELECT count(*) FROM artifacts"), 0);
}

TEST(TrackerSchema, RefusesANewerFileAndLeavesItUntouched) {
  const std::string path = test_path("newer.db");
  {
    auto db = open_database(path, OpenMode::kReadWrite);
    db->exec("PRAGMA user_version=" + std::to_string(schema_version() + 5));
    db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }
  const std::string before = file_contents(path);
  EXPECT_NE(open_error(path).find("written by a newer i3lab"), std::string::npos) << open_error(path);
  EXPECT_NE(open_error(path, OpenMode::kReadOnly).find("newer"), std::string::npos);
  EXPECT_EQ(file_contents(path), before);
}

TEST(TrackerSchema, RefusesAForeignSqliteFileAndLeavesItUntouched) {
  const std::string path = test_path("foreign.db");
  {
    Db db(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("CREATE TABLE customers(id INTEGER PRIMARY KEY, name TEXT); INSERT INTO customers(name) VALUES('x')");
  }
  const std::string before = file_contents(path);
  EXPECT_NE(open_error(path).find("a SQLite database of another program"), std::string::npos) << open_error(path);
  EXPECT_EQ(file_contents(path), before);
  EXPECT_FALSE(std::filesystem::exists(path + "-wal"));
}

TEST(TrackerSchema, RefusesACorruptFileAndLeavesItUntouched) {
  const std::string path = test_path("garbage.db");
  std::ofstream(path, std::ios::binary) << std::string(4096, 'G') << "not a database";
  const std::string before = file_contents(path);
  EXPECT_NE(open_error(path).find(path + ": not an i3lab database"), std::string::npos) << open_error(path);
  EXPECT_EQ(file_contents(path), before);
  EXPECT_NE(open_error(test_path("missing.db"), OpenMode::kReadOnly).find("no such database file"), std::string::npos);
}

// An i3lab database (marks and tables) whose user_version was set to `version` afterwards,
// checkpointed so that the whole database is in the file itself.
void make_marked_database(const std::string& path, int version) {
  auto db = open_database(path, OpenMode::kReadWrite);
  db->exec("PRAGMA user_version=" + std::to_string(version));
  db->exec("PRAGMA wal_checkpoint(TRUNCATE)");
}

TEST(TrackerSchema, RefusesANegativeOrZeroUserVersionWithTablesAndLeavesTheFileUntouched) {
  for (const int version : {-5, 0, INT32_MIN}) {
    SCOPED_TRACE("user_version " + std::to_string(version));
    const std::string path = test_path("odd_version.db");
    make_marked_database(path, version);
    const std::string before = file_contents(path);
    for (const OpenMode mode : {OpenMode::kReadWrite, OpenMode::kReadOnly}) {
      const std::string error = open_error(path, mode);
      EXPECT_EQ(error.rfind(path + ": not an i3lab database of a known version (user_version " + std::to_string(version), 0), 0u)
          << error;
      EXPECT_NE(error.find("left untouched"), std::string::npos) << error;
    }
    EXPECT_EQ(file_contents(path), before);
    EXPECT_TRUE(!std::filesystem::exists(path + "-wal") || std::filesystem::file_size(path + "-wal") == 0);
  }
}

TEST(TrackerSchema, ReadOnlyRefusesAFileWithoutTablesAndCreatesNothing) {
  // A 0-byte file (e.g. `touch`ed) and a SQLite file holding only the marks, no tables.
  const std::string empty = test_path("empty.db"), marked = test_path("marked.db");
  write_file(empty, "");
  {
    Db db(marked, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA application_id=" + std::to_string(kApplicationId) + "; PRAGMA user_version=2");
  }
  for (const std::string& path : {empty, marked}) {
    SCOPED_TRACE(path);
    const std::string before = file_contents(path);
    const std::string error = open_error(path, OpenMode::kReadOnly);
    EXPECT_EQ(error.rfind(path + ": not an i3lab database (no tables)", 0), 0u) << error;
    EXPECT_EQ(file_contents(path), before);
    for (const char* suffix : {"-wal", "-shm", "-journal"}) EXPECT_FALSE(std::filesystem::exists(path + suffix)) << suffix;
  }
  // A writer refuses the marked one too (the marks claim tables it lacks); the empty file is a
  // new database to it.
  EXPECT_NE(open_error(marked).find("no tables"), std::string::npos) << open_error(marked);
  open_database(empty, OpenMode::kReadWrite);
  auto db = open_database(empty, OpenMode::kReadOnly);
  EXPECT_EQ(pragma(*db, "PRAGMA user_version"), schema_version());
}

TEST(TrackerSchema, ReadOnlyDoesNotCreateAMissingFile) {
  const std::string path = test_path("missing.db");
  const std::string error = open_error(path, OpenMode::kReadOnly);
  EXPECT_EQ(error, path + ": no such database file");
  for (const char* suffix : {"", "-wal", "-shm", "-journal"}) EXPECT_FALSE(std::filesystem::exists(path + suffix)) << suffix;
}

TEST(TrackerSchema, AFifoOrADirectoryIsRefusedNotWaitedOn) {
  const std::string fifo = test_path("db.fifo");
  std::filesystem::remove(fifo);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (OpenMode mode : {OpenMode::kReadOnly, OpenMode::kReadWrite})
    EXPECT_EQ(open_error(fifo, mode), fifo + ": not a regular file, so not a database; it was left untouched");
  const std::string dir = test_path("db.dir");
  std::filesystem::create_directories(dir);
  EXPECT_EQ(open_error(dir, OpenMode::kReadOnly), dir + ": not a regular file, so not a database; it was left untouched");
}

TEST(TrackerSchema, ReadOnlyReadsAnOlderFileAsItIs) {
  const std::string path = test_path("old.db");
  open_database(path, OpenMode::kReadWrite, /*max_version=*/1);
  const std::string before = file_contents(path);
  auto db = open_database(path, OpenMode::kReadOnly);
  EXPECT_EQ(pragma(*db, "PRAGMA user_version"), 1);
  EXPECT_EQ(pragma(*db, "SELECT count(*) FROM runs"), 0);
  db.reset();
  EXPECT_EQ(file_contents(path), before);
  EXPECT_THROW(open_database(path, OpenMode::kReadWrite, schema_version() + 1), std::invalid_argument);
}

TEST(TrackerSchema, PathsWithUriCharactersNameTheFileTheySpell) {
  const std::string dir = test_path("odd dir?x=1#y%20");
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/a?mode=ro#b%41.db";
  open_database(path, OpenMode::kReadWrite)->exec("INSERT INTO projects(name) VALUES('p')");
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir), std::filesystem::directory_iterator()), 1)
      << "only the file itself (its -wal and -shm are gone once closed)";
  auto db = open_database(path, OpenMode::kReadOnly);
  EXPECT_EQ(pragma(*db, "SELECT count(*) FROM projects"), 1);
  EXPECT_EQ(sqlite_uri("/a b/c?d", "mode=ro"), "file:///a%20b/c%3Fd?mode=ro");
  EXPECT_EQ(sqlite_uri("rel/x.db"), "file:rel/x.db");
}

}  // namespace
}  // namespace tracker
