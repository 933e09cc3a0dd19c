#include "bench/tracker/commands.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/util/clock.h"
#include "tracker/db/sqlite.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"

namespace tracker {
namespace {

using util::Clock;
using util::seconds_since;

// Ingest through the public API, side by side with a raw SQLite loop over the same layout,
// then a downsampling query on a 1,000,000-point series.
int bench_tracker(const cli::Args& args) {
  const int64_t points = args.get_int("points", 1000000, 10);
  const int keys = 10;
  const std::string dir = args.get("dir", std::filesystem::temp_directory_path().string());
  const std::string base = dir + "/i3lab-bench-" + std::to_string(::getpid());
  for (const char* suffix : {".db", ".db-wal", ".db-shm", "-raw.db", "-raw.db-wal", "-raw.db-shm"})
    std::filesystem::remove(base + suffix);
  nlohmann::ordered_json out;
  out["points"] = points;
  {
    Store store(base + ".db");
    Run run = Run::create(store, {"bench", "ingest"});
    const std::string names[keys] = {"train/loss", "train/perplexity", "train/grad_norm", "train/learning_rate",
                                      "train/tokens_per_sec", "train/tokens_seen", "val/loss", "val/perplexity",
                                      "system/cpu_percent", "system/rss_bytes"};
    std::vector<int64_t> call_ns;
    call_ns.reserve(points / keys);
    const auto start = Clock::now();
    for (int64_t step = 0; step < points / keys; ++step) {
      const double x = static_cast<double>(step);
      const auto t0 = Clock::now();
      run.log(step, {{names[0], x}, {names[1], x}, {names[2], x}, {names[3], x}, {names[4], x},
                     {names[5], x}, {names[6], x}, {names[7], x}, {names[8], x}, {names[9], x}});
      call_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
    }
    run.flush();
    const double secs = seconds_since(start);
    std::nth_element(call_ns.begin(), call_ns.begin() + call_ns.size() / 2, call_ns.end());
    out["points_per_sec"] = points / secs;
    out["p50_log_call_ns"] = call_ns[call_ns.size() / 2];
  }
  {
    // The same rows straight into SQLite: prepared statement, 1,000 rows per transaction.
    Db db(base + "-raw.db", SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
            "CREATE TABLE metrics(run_id INTEGER, key_id INTEGER, step INTEGER, value REAL, wall REAL,"
            " PRIMARY KEY(run_id, key_id, step)) WITHOUT ROWID");
    Stmt insert(db, "INSERT INTO metrics VALUES(1, ?, ?, ?, ?)");
    const auto start = Clock::now();
    for (int64_t i = 0; i < points; i += 1000) {
      db.exec("BEGIN");
      for (int64_t j = i; j < std::min(points, i + 1000); ++j) insert.bind(1, j % keys).bind(2, j / keys).bind(3, 1.0 * j).bind(4, 0.0).run();
      db.exec("COMMIT");
    }
    out["raw_sqlite_rows_per_sec"] = points / seconds_since(start);
    out["api_vs_raw"] = out["points_per_sec"].get<double>() / out["raw_sqlite_rows_per_sec"].get<double>();
  }
  {
    // A 1,000,000-point series of one key, then 1,000 buckets over all of it.
    const int64_t n = 1000000;
    {
      Store store(base + ".db");
      Run run = Run::create(store, {"bench", "one-series"});
      for (int64_t step = 0; step < n; ++step) run.log(step, {{"series", std::sin(step * 1e-3)}});
      run.flush();
      out["series_run"] = run.id();
    }
    Query q(base + ".db");
    const int64_t run_id = out["series_run"];
    double best = 1e9;
    size_t got = 0;
    for (int rep = 0; rep < 5; ++rep) {
      const auto start = Clock::now();
      got = q.series(run_id, "series", 0, n - 1, 1000).size();
      best = std::min(best, seconds_since(start));
    }
    out["query_ms_1m_points_1000_buckets"] = best * 1e3;
    out["buckets_returned"] = got;
  }
  if (args.has("keep")) std::filesystem::rename(base + ".db", args.get("keep"));
  for (const char* suffix : {".db", ".db-wal", ".db-shm", "-raw.db", "-raw.db-wal", "-raw.db-shm"})
    std::filesystem::remove(base + suffix);
  std::cout << (args.has("json") ? out.dump() : out.dump(2)) << "\n";
  return 0;
}

}  // namespace

std::vector<cli::Command> bench_commands() {
  return {
      {"bench tracker", "tracker ingest and query speed",
       "usage: i3lab bench tracker [--points N] [--dir DIR] [--keep FILE] [--json]\n\n"
       "Logs N points (10 keys per step) through the Run API into a fresh file and, side by side, the\n"
       "same rows through a raw SQLite loop; then times a 1,000-bucket query of a 1,000,000-point series.\n"
       "--keep FILE keeps the tracker database it wrote (two runs) as FILE.\n",
       {{"points", "dir", "keep"}, {"json"}}, bench_tracker},
  };
}

}  // namespace tracker
