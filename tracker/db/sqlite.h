// A thin RAII layer over SQLite: a connection, prepared statements, transactions.
// Errors throw DbError with the database path and SQLite's message; lookups of what is not
// there throw NotFound.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace tracker {

struct DbError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A run, artifact or artifact version that the database does not hold: its own type, so that
// a caller can tell "there is no checkpoint v3" from "checkpoint v3 is damaged". It is an
// invalid_argument to callers that need not tell: they asked for something that is not there.
struct NotFound : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

// `path` as an SQLite URI ("file:…"), every byte outside [A-Za-z0-9/._~-] percent-encoded so
// that any path names the file it spells (a path may hold '?', '#' or '%'). `query` (e.g.
// "mode=ro") is appended after '?'. For ATTACH on a Db, which opens with SQLITE_OPEN_URI.
std::string sqlite_uri(const std::string& path, const std::string& query = "");

class Db {
 public:
  // sqlite3_open_v2 flags; a busy timeout makes writers wait instead of failing. `path` is a
  // file path, never a URI: it is opened through sqlite_uri() with SQLITE_OPEN_URI added, so
  // that ATTACH on this connection accepts URIs (tracker/sync attaches its source "mode=ro").
  Db(const std::string& path, int flags, int busy_timeout_ms = 30000);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  void exec(const std::string& sql);
  sqlite3* handle() const { return db_; }
  const std::string& path() const { return path_; }
  [[noreturn]] void fail(const std::string& what) const;

 private:
  sqlite3* db_ = nullptr;
  std::string path_;
};

class Stmt {
 public:
  Stmt(Db& db, const char* sql);
  ~Stmt();
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;

  // Binds are 1-based, as in SQLite. Non-finite doubles: NaN must be bound as NULL by the
  // caller (SQLite turns NaN into NULL anyway); ±inf are stored as REAL.
  Stmt& bind(int i, int64_t v);
  Stmt& bind(int i, double v);
  Stmt& bind(int i, std::string_view v);
  Stmt& bind(int i, const char* v) { return bind(i, std::string_view(v)); }
  Stmt& bind_null(int i);
  // Advances; true while a row is available. Throws on errors.
  bool step();
  // Runs to completion (for statements without results) and resets.
  void run();
  void reset();

  int columns() const { return sqlite3_column_count(stmt_); }
  int64_t int64(int col) const { return sqlite3_column_int64(stmt_, col); }
  double real(int col) const { return sqlite3_column_double(stmt_, col); }
  bool is_null(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string text(int col) const;

 private:
  Db& db_;
  sqlite3_stmt* stmt_ = nullptr;
};

// BEGIN IMMEDIATE ... COMMIT; rolls back unless committed. IMMEDIATE takes the write lock at
// the start, so a busy database is waited for (busy timeout) instead of failing mid-way.
class WriteTransaction {
 public:
  explicit WriteTransaction(Db& db);
  ~WriteTransaction();
  void commit();

 private:
  Db& db_;
  bool done_ = false;
};

}  // namespace tracker
