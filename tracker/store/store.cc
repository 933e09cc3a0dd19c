#include "tracker/store/store.h"

#include <chrono>
#include <cmath>
#include <future>
#include <algorithm>
#include <tuple>

#include "tracker/db/schema.h"

namespace tracker {
namespace {

// Running aggregate of points: what a summary row and a tier bucket hold.
struct Agg {
  double min = NAN, max = NAN;  // NaN: no non-NaN value yet
  double last = NAN, last_wall = 0;
  int64_t last_step = INT64_MIN;
  int64_t count = 0;
  void add(int64_t step, double value, double wall) {
    if (!std::isnan(value)) {
      min = std::isnan(min) ? value : std::min(min, value);
      max = std::isnan(max) ? value : std::max(max, value);
    }
    if (step >= last_step) last_step = step, last = value, last_wall = wall;
    ++count;
  }
};

void bind_value(Stmt& s, int i, double v) {
  if (std::isnan(v)) {
    s.bind_null(i);
  } else {
    s.bind(i, v);
  }
}

}  // namespace

void rebuild_aggregates(Db& db, int64_t run) {
  Stmt clear(db, "DELETE FROM metric_tiers WHERE run_id = ?");
  clear.bind(1, run).run();
  Stmt tiers(db, R"SQL(
    INSERT INTO metric_tiers(run_id, key_id, width, bucket, min, max, last, last_step, last_wall, count)
    SELECT run_id, key_id, ?2, CASE WHEN step >= 0 THEN step / ?2 ELSE (step - ?2 + 1) / ?2 END AS b,
           min(value), max(value), NULL, max(step), 0, count(*)
    FROM metrics WHERE run_id = ?1 GROUP BY key_id, b)SQL");
  for (int64_t width : kTierWidths) tiers.bind(1, run).bind(2, width).run();
  Stmt tier_last(db, R"SQL(
    UPDATE metric_tiers SET (last, last_wall) = (SELECT value, wall FROM metrics m WHERE m.run_id = metric_tiers.run_id
      AND m.key_id = metric_tiers.key_id AND m.step = metric_tiers.last_step) WHERE run_id = ?)SQL");
  tier_last.bind(1, run).run();
  Stmt reset(db, "UPDATE summaries SET last = NULL, last_step = -1, min = NULL, max = NULL, count = 0 WHERE run_id = ?");
  reset.bind(1, run).run();
  Stmt summaries(db, R"SQL(
    INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count)
    SELECT run_id, key_id, NULL, max(step), min(value), max(value), count(*) FROM metrics WHERE run_id = ? GROUP BY key_id
    ON CONFLICT(run_id, key_id) DO UPDATE SET
      last_step = excluded.last_step, min = excluded.min, max = excluded.max, count = excluded.count)SQL");
  summaries.bind(1, run).run();
  Stmt summary_last(db, R"SQL(
    UPDATE summaries SET last = (SELECT value FROM metrics m WHERE m.run_id = summaries.run_id
      AND m.key_id = summaries.key_id AND m.step = summaries.last_step) WHERE run_id = ?)SQL");
  summary_last.bind(1, run).run();
  Stmt empty(db, "DELETE FROM summaries WHERE run_id = ? AND count = 0 AND goal = ''");
  empty.bind(1, run).run();
}

Store::Store(const std::string& path, Options options)
    : path_(path), options_(options), db_(open_database(path, OpenMode::kReadWrite)) {
  points_.reserve(options_.batch_points);
  writer_ = std::thread([this] { writer_loop(); });
}

Store::~Store() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_one();
  writer_.join();
}

void Store::check_error_locked() const {
  if (error_) std::rethrow_exception(error_);
}

void Store::log_points(int64_t run_id, int64_t step, double wall, const std::pair<std::string_view, double>* values,
                       size_t count) {
  std::unique_lock<std::mutex> lock(mu_);
  check_error_locked();
  space_cv_.wait(lock, [&] { return points_.size() + count <= options_.max_pending_points || error_ || points_.empty(); });
  check_error_locked();
  for (size_t i = 0; i < count; ++i) {
    const std::string_view key = values[i].first;
    auto it = interned_.find(key);
    if (it == interned_.end()) {
      if (key.empty() || key.size() > kMaxNameBytes)
        throw std::invalid_argument("metric key '" + std::string(key.substr(0, 64)) + "' must be 1.." +
                                    std::to_string(kMaxNameBytes) + " bytes");
      it = interned_.emplace(std::string(key), static_cast<uint32_t>(names_.size())).first;
      names_.emplace_back(key);
    }
    points_.push_back({run_id, step, values[i].second, wall, it->second});
  }
  ++queued_;
  if (points_.size() >= options_.batch_points) work_cv_.notify_one();
}

void Store::enqueue(std::function<void(Db&)> write) {
  std::lock_guard<std::mutex> lock(mu_);
  check_error_locked();
  writes_.push_back(std::move(write));
  ++queued_;
  work_cv_.notify_one();
}

void Store::execute(const std::function<void(Db&)>& write) {
  auto done = std::make_shared<std::promise<void>>();
  std::future<void> result = done->get_future();
  // Runs inside the batch's transaction, in a savepoint so that its failure is its own.
  enqueue([write, done](Db& db) {
    db.exec("SAVEPOINT execute");
    try {
      write(db);
      db.exec("RELEASE execute");
    } catch (...) {
      db.exec("ROLLBACK TO execute");
      db.exec("RELEASE execute");
      done->set_exception(std::current_exception());
      return;
    }
    done->set_value();
  });
  flush();
  result.get();
}

void Store::flush() {
  std::unique_lock<std::mutex> lock(mu_);
  const uint64_t ticket = queued_;
  flush_requested_ = true;
  work_cv_.notify_one();
  done_cv_.wait(lock, [&] { return committed_ >= ticket || error_; });
  check_error_locked();
}

int64_t Store::key_id(Db& db, std::string_view name) {
  auto it = key_ids_.find(name);
  if (it != key_ids_.end()) return it->second;
  Stmt insert(db, "INSERT OR IGNORE INTO metric_keys(name) VALUES(?)");
  insert.bind(1, name).run();
  Stmt select(db, "SELECT id FROM metric_keys WHERE name = ?");
  select.bind(1, name);
  if (!select.step()) db.fail("metric key vanished");
  const int64_t id = select.int64(0);
  key_ids_.emplace(std::string(name), id);
  return id;
}

void Store::writer_loop() {
  std::vector<Point> points;
  std::vector<std::function<void(Db&)>> writes;
  points.reserve(options_.batch_points);
  while (true) {
    uint64_t ticket;
    bool stop;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait_for(lock, std::chrono::milliseconds(options_.flush_interval_ms), [&] {
        return stopping_ || flush_requested_ || !writes_.empty() || points_.size() >= options_.batch_points;
      });
      points.swap(points_);
      writes.swap(writes_);
      ticket = queued_;
      flush_requested_ = false;
      stop = stopping_;
    }
    space_cv_.notify_all();
    if (!points.empty() || !writes.empty()) {
      try {
        write_batch(points, writes);
      } catch (...) {
        // The transaction rolled back: keep the writer's error for every later call, so the
        // caller learns that data past the last flush() was not stored.
        std::lock_guard<std::mutex> lock(mu_);
        error_ = std::current_exception();
        done_cv_.notify_all();
        space_cv_.notify_all();
        return;
      }
    }
    points.clear();
    writes.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      committed_ = ticket;
    }
    done_cv_.notify_all();
    if (stop) {
      std::lock_guard<std::mutex> lock(mu_);
      if (points_.empty() && writes_.empty()) return;
    }
  }
}

void Store::write_batch(std::vector<Point>& points, std::vector<std::function<void(Db&)>>& writes) {
  Db& db = *db_;
  WriteTransaction tx(db);
  if (!points.empty()) {
    std::vector<int64_t> ids;  // local key index → metric_keys.id
    {
      std::vector<std::string> names;
      {
        std::lock_guard<std::mutex> lock(mu_);
        names = names_;  // grows only: the snapshot covers every index in `points`
      }
      for (const auto& name : names) ids.push_back(key_id(db, name));
    }
    // In (run, key, step) order the inserts walk the clustered index forwards and each
    // series' aggregates are one linear pass. Stable: of two points at one step the later wins.
    std::stable_sort(points.begin(), points.end(), [&](const Point& a, const Point& b) {
      return std::tie(a.run_id, ids[a.key], a.step) < std::tie(b.run_id, ids[b.key], b.step);
    });
    Stmt insert(db, "INSERT OR REPLACE INTO metrics(run_id, key_id, step, value, wall) VALUES(?, ?, ?, ?, ?)");
    for (const Point& p : points) {
      insert.bind(1, p.run_id).bind(2, ids[p.key]).bind(3, p.step);
      bind_value(insert, 4, p.value);
      insert.bind(5, p.wall).run();
    }
    // Merge this batch's aggregates into the stored ones.
    Stmt summary(db, R"SQL(
      INSERT INTO summaries(run_id, key_id, last, last_step, min, max, count) VALUES(?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(run_id, key_id) DO UPDATE SET
        last = CASE WHEN excluded.last_step >= last_step THEN excluded.last ELSE last END,
        last_step = max(last_step, excluded.last_step),
        min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)),
        max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)),
        count = count + excluded.count)SQL");
    Stmt tier(db, R"SQL(
      INSERT INTO metric_tiers(run_id, key_id, width, bucket, min, max, last, last_step, last_wall, count)
      VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(run_id, key_id, width, bucket) DO UPDATE SET
        last = CASE WHEN excluded.last_step >= last_step THEN excluded.last ELSE last END,
        last_wall = CASE WHEN excluded.last_step >= last_step THEN excluded.last_wall ELSE last_wall END,
        last_step = max(last_step, excluded.last_step),
        min = min(coalesce(min, excluded.min), coalesce(excluded.min, min)),
        max = max(coalesce(max, excluded.max), coalesce(excluded.max, max)),
        count = count + excluded.count)SQL");
    auto write_agg = [](Stmt& s, int first, const Agg& a) {
      bind_value(s, first, a.min);
      bind_value(s, first + 1, a.max);
      bind_value(s, first + 2, a.last);
      s.bind(first + 3, a.last_step);
    };
    for (size_t begin = 0; begin < points.size();) {
      const int64_t run = points[begin].run_id, key = ids[points[begin].key];
      size_t end = begin;
      Agg all;
      for (; end < points.size() && points[end].run_id == run && ids[points[end].key] == key; ++end)
        all.add(points[end].step, points[end].value, points[end].wall);
      summary.bind(1, run).bind(2, key);
      bind_value(summary, 3, all.last);
      summary.bind(4, all.last_step);
      bind_value(summary, 5, all.min);
      bind_value(summary, 6, all.max);
      summary.bind(7, all.count).run();
      for (int64_t width : kTierWidths) {
        for (size_t i = begin; i < end;) {
          const int64_t bucket = bucket_of(points[i].step, width);
          Agg a;
          for (; i < end && bucket_of(points[i].step, width) == bucket; ++i) a.add(points[i].step, points[i].value, points[i].wall);
          tier.bind(1, run).bind(2, key).bind(3, width).bind(4, bucket);
          write_agg(tier, 5, a);
          tier.bind(9, a.last_wall).bind(10, a.count).run();
        }
      }
      begin = end;
    }
  }
  for (auto& write : writes) write(db);
  tx.commit();
}

}  // namespace tracker
