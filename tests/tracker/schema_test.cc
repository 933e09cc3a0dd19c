// The database file: creation, upgrade in place, and refusal (untouched) of files that are not
// ours or are newer.
#include "tracker/db/schema.h"

#include <gtest/gtest.h>

#include "tests/test_paths.h"

#include <filesystem>
#include <fstream>
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

}  // namespace
}  // namespace tracker
