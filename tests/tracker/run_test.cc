// The Run logging API and the queries over what it stored, on a real SQLite file.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <optional>
#include <sstream>

#include "tests/test_paths.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"

namespace tracker {
namespace {

// Checks every bucket of a downsampled series against the raw points it covers.
void expect_buckets_match_raw(Query& q, int64_t run, const std::string& key, int64_t x0, int64_t x1, int n) {
  std::vector<Bucket> raw = q.points(run, key, x0, x1);
  std::vector<Bucket> buckets = q.series(run, key, x0, x1, n);
  ASSERT_FALSE(buckets.empty());
  EXPECT_LE(buckets.size(), static_cast<size_t>(n));
  int64_t total = 0;
  for (size_t b = 0; b < buckets.size(); ++b) {
    const int64_t lo = buckets[b].first_step, hi = b + 1 < buckets.size() ? buckets[b + 1].first_step : INT64_MAX;
    double mn = NAN, mx = NAN, last = NAN;
    int64_t count = 0, last_step = -1;
    for (const auto& p : raw) {
      if (p.first_step < lo || p.first_step >= hi) continue;
      if (!std::isnan(p.min)) mn = std::isnan(mn) ? p.min : std::min(mn, p.min), mx = std::isnan(mx) ? p.max : std::max(mx, p.max);
      last = p.last, last_step = p.last_step, ++count;
    }
    SCOPED_TRACE("bucket " + std::to_string(b) + " steps [" + std::to_string(lo) + ", " + std::to_string(hi) + ")");
    EXPECT_EQ(buckets[b].count, count);
    EXPECT_EQ(buckets[b].last_step, last_step);
    EXPECT_TRUE(std::isnan(mn) ? std::isnan(buckets[b].min) : buckets[b].min == mn);
    EXPECT_TRUE(std::isnan(mx) ? std::isnan(buckets[b].max) : buckets[b].max == mx);
    EXPECT_TRUE(std::isnan(last) ? std::isnan(buckets[b].last) : buckets[b].last == last);
    total += buckets[b].count;
  }
  EXPECT_EQ(total, static_cast<int64_t>(raw.size()));
}

TEST(TrackerRun, LogsMetricsWithSummariesAndNonFiniteValues) {
  const std::string path = test_path("tracker.db");
  int64_t id;
  {
    Store store(path);
    tracker::Run run = tracker::Run::create(store, {"proj", "first", "grp", {"a", "b"}, "some notes", {{"lr", 0.001}, {"layers", 4}}});
    id = run.id();
    run.define_metric("val/loss", Goal::kMinimize);
    for (int step = 0; step < 100; ++step) run.log(step, {{"train/loss", 10.0 - step * 0.1}, {"val/loss", step == 50 ? 1.0 : 5.0}});
    run.log(100, {{"train/loss", NAN}, {"odd", INFINITY}});
    run.log(101, {{"odd", -INFINITY}});
    run.finish();
  }
  Query q(path);
  RunRecord r = q.run(id);
  EXPECT_EQ(r.name, "first");
  EXPECT_EQ(r.project, "proj");
  EXPECT_EQ(r.group, "grp");
  EXPECT_EQ(r.status, "finished");
  EXPECT_GT(r.finished_at, 0);
  EXPECT_EQ(r.tags, nlohmann::json({"a", "b"}));
  EXPECT_EQ(r.config["layers"], 4);
  const auto& loss = r.summary["train/loss"];
  EXPECT_TRUE(loss["last"].is_null()) << "NaN is the last value";
  EXPECT_EQ(loss["last_step"], 100);
  EXPECT_DOUBLE_EQ(loss["min"].get<double>(), 10.0 - 99 * 0.1);
  EXPECT_DOUBLE_EQ(loss["max"].get<double>(), 10.0);
  EXPECT_EQ(loss["count"], 101);
  EXPECT_EQ(r.summary["val/loss"]["goal"], "min");
  EXPECT_DOUBLE_EQ(r.summary["val/loss"]["best"].get<double>(), 1.0);
  auto points = q.points(id, "train/loss", 99, 100);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_TRUE(std::isnan(points[1].last));
  auto odd = q.points(id, "odd", 0, 200);
  ASSERT_EQ(odd.size(), 2u);
  EXPECT_EQ(odd[0].last, INFINITY);
  EXPECT_EQ(odd[1].last, -INFINITY);

  std::stringstream csv;
  q.export_history_csv(id, csv);
  std::string line, last_line, header;
  std::getline(csv, header);
  EXPECT_EQ(header, "step,wall,odd,train/loss,val/loss");
  std::getline(csv, line);
  EXPECT_EQ(line.substr(0, 2), "0,");
  EXPECT_EQ(line.substr(line.find(',', 2)), ",,10,5");
  std::string row100;
  while (std::getline(csv, line)) {
    if (line.rfind("100,", 0) == 0) row100 = line;
    last_line = line;
  }
  EXPECT_EQ(row100.substr(row100.find(',', 4)), ",inf,nan,");
  EXPECT_EQ(last_line.substr(last_line.find(',', 4)), ",-inf,,");
}

TEST(TrackerRun, TablesHistogramsConsoleAndLimits) {
  const std::string path = test_path("tracker.db");
  Store store(path);
  tracker::Run run = tracker::Run::create(store, {"proj"});
  using Json = nlohmann::json;
  run.log_table("samples", 500, {"prompt", "output"}, Json::array({Json::array({"hello", "hello there"}), Json::array({"once", "once upon"})}));
  run.log_table("samples", 1000, {"prompt", "output"}, Json::array({Json::array({"hello", "hi"})}));
  run.log_histogram("weights/head", 10, {1, 2, 2, 3, NAN, 4}, 3);
  run.log_console("stdout", "step 1 loss 2.0");
  run.log_console("stderr", "warning: something");
  EXPECT_THROW(run.log_table("samples", 1, {"a", "b"}, Json::array({Json::array({"only one"})})), std::invalid_argument);
  EXPECT_THROW(run.log_table("samples", 1, {"a", "b"}, Json::object()), std::invalid_argument);
  EXPECT_THROW(run.log_table("", 1, {"a"}, {}), std::invalid_argument);
  EXPECT_THROW(run.log(1, {{std::string(300, 'k'), 1.0}}), std::invalid_argument);
  EXPECT_THROW(run.log(1, {{"", 1.0}}), std::invalid_argument);
  EXPECT_THROW(run.finish("exploded"), std::invalid_argument);
  EXPECT_THROW(tracker::Run::create(store, {std::string(300, 'p')}), std::invalid_argument);
  RunSpec bad;
  bad.config = nlohmann::json::array({1});
  EXPECT_THROW(tracker::Run::create(store, bad), std::invalid_argument);
  bad.config = {{"blob", std::string(kMaxJsonBytes, 'x')}};
  EXPECT_THROW(tracker::Run::create(store, bad), std::invalid_argument);
  run.finish("stopped");

  Query q(path);
  EXPECT_EQ(q.table_steps(run.id(), "samples"), (std::vector<int64_t>{500, 1000}));
  auto t = q.table(run.id(), "samples", 500);
  EXPECT_EQ(t["columns"], nlohmann::json({"prompt", "output"}));
  EXPECT_EQ(t["rows"][1][1], "once upon");
  Stmt h(q.db(), "SELECT lo, hi, counts FROM histograms WHERE run_id = ?");
  h.bind(1, run.id());
  ASSERT_TRUE(h.step());
  EXPECT_EQ(h.real(0), 1);
  EXPECT_EQ(h.real(1), 4);
  EXPECT_EQ(h.text(2), "[1,2,2]");
  auto lines = q.console(run.id());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["stream"], "stderr");
  EXPECT_EQ(lines[1]["seq"], 1);
  EXPECT_EQ(q.run(run.id()).status, "stopped");
}

TEST(TrackerRun, BackPressureLosesNothing) {
  const std::string path = test_path("tracker.db");
  Store::Options small;
  small.max_pending_points = 500;
  small.batch_points = 100;
  Store store(path, small);
  tracker::Run run = tracker::Run::create(store, {"proj"});
  for (int step = 0; step < 20000; ++step) run.log(step, {{"a", 1.0 * step}, {"b", -1.0 * step}});
  run.flush();
  Query q(path);
  EXPECT_EQ(q.run(run.id()).summary["a"]["count"], 20000);
  EXPECT_EQ(q.points(run.id(), "b", 0, 1 << 30).size(), 20000u);
}

TEST(TrackerQuery, DownsampledSeriesMatchesRawPointsBucketByBucket) {
  const std::string path = test_path("tracker.db");
  Store::Options small_batches;
  small_batches.batch_points = 997;  // many batches, so tiers are merged across them
  Store store(path, small_batches);
  tracker::Run run = tracker::Run::create(store, {"proj"});
  // 200,000 steps with gaps, NaNs and an infinity; every 5,000th pair logged in reverse order.
  auto value = [](int step) -> double {
    if (step % 1009 == 0) return NAN;
    if (step == 123457) return INFINITY;
    return std::sin(step * 1e-3) + 0.1 * std::sin(step * 12.9898);
  };
  for (int step = 0; step < 200000; ++step) {
    if (step % 97 == 5) continue;
    if (step % 5000 == 7) {
      run.log(step + 1, {{"loss", value(step + 1)}});
      run.log(step, {{"loss", value(step)}});
      ++step;
      continue;
    }
    run.log(step, {{"loss", value(step)}});
  }
  run.flush();
  Query q(path);
  for (auto [x0, x1, n] : std::vector<std::tuple<int64_t, int64_t, int>>{
           {0, 199999, 1000}, {0, 199999, 37}, {1000, 1999, 100}, {12345, 67890, 250}, {0, 50, 1000}})
    expect_buckets_match_raw(q, run.id(), "loss", x0, x1, n);
}

TEST(TrackerRun, ResumeRewindsHistoryToOneLine) {
  const std::string path = test_path("tracker.db");
  int64_t id;
  {
    Store store(path);
    tracker::Run run = tracker::Run::create(store, {"proj"});
    id = run.id();
    run.define_metric("loss", Goal::kMinimize);
    for (int step = 0; step < 5000; ++step) run.log(step, {{"loss", 1000.0 - step}});
    run.log(4000, {{"system/cpu_percent", 50}});  // sampled, not stepped: never rewound
    run.log_table("samples", 1000, {"a"}, nlohmann::json::array({nlohmann::json::array({1})}));
    run.log_table("samples", 3000, {"a"}, nlohmann::json::array({nlohmann::json::array({1})}));
    run.log_console("stdout", "before the crash");
    // crash: no finish()
  }
  {
    Store store(path);
    tracker::Run run = tracker::Run::resume(store, id, 2999);
    for (int step = 3000; step < 4000; ++step) run.log(step, {{"loss", 500.0 + (step - 3000) * 0.5}});
    run.log_console("stdout", "after the restart");
    run.set_config({{"lr", 0.5}});  // resumed with a changed setting
    EXPECT_THROW(run.set_config(nlohmann::json::array()), std::invalid_argument);
    run.finish();
  }
  Query q(path);
  RunRecord r = q.run(id);
  EXPECT_EQ(r.config, nlohmann::json({{"lr", 0.5}}));
  const auto& loss = r.summary["loss"];
  EXPECT_EQ(loss["count"], 4000);
  EXPECT_EQ(loss["last_step"], 3999);
  EXPECT_DOUBLE_EQ(loss["last"].get<double>(), 500.0 + 999 * 0.5);
  EXPECT_DOUBLE_EQ(loss["min"].get<double>(), -1999.0);  // step 2999; the rewound -2000..-3999 are gone
  EXPECT_DOUBLE_EQ(loss["max"].get<double>(), 1000.0);
  EXPECT_EQ(loss["goal"], "min");
  EXPECT_EQ(r.summary["system/cpu_percent"]["count"], 1);
  EXPECT_EQ(q.table_steps(id, "samples"), (std::vector<int64_t>{1000}));
  auto lines = q.console(id);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["line"], "after the restart");
  EXPECT_EQ(r.status, "finished");
  EXPECT_EQ(q.points(id, "loss", 0, 100000).size(), 4000u);
  expect_buckets_match_raw(q, id, "loss", 0, 3999, 100);
  expect_buckets_match_raw(q, id, "loss", 0, 3999, 3);
  EXPECT_THROW({ Store s(path); tracker::Run::resume(s, 999, 0); }, std::invalid_argument);
}

TEST(TrackerQuery, WallTimeRangesMapToSteps) {
  const std::string path = test_path("tracker.db");
  Store store(path);
  tracker::Run run = tracker::Run::create(store, {"proj"});
  // 300,000 steps, 0.01 s apart from t = 1000 s, with a 500 s pause (a restart) at step 200,000;
  // every third step missing.
  auto wall_of = [](int64_t step) { return 1000.0 + step * 0.01 + (step >= 200000 ? 500.0 : 0.0); };
  for (int64_t step = 0; step < 300000; ++step) {
    if (step % 3 == 1) continue;
    store.submit({run.uid(), 0, Metrics{step, wall_of(step), {{"loss", 1.0}}}});  // a chosen wall time
  }
  store.flush();
  Query q(path);
  // Brute force over the logged points.
  auto expected = [&](double w0, double w1) -> std::optional<std::pair<int64_t, int64_t>> {
    std::optional<std::pair<int64_t, int64_t>> out;
    for (int64_t step = 0; step < 300000; ++step) {
      if (step % 3 == 1 || wall_of(step) < w0 || wall_of(step) > w1) continue;
      if (!out) out = std::make_pair(step, step);
      out->second = step;
    }
    return out;
  };
  for (auto [w0, w1] : std::vector<std::pair<double, double>>{{0, 1e9}, {1000.0, 1000.0}, {1100.005, 1200.0},
                                                              {2999.0, 3499.0}, {2999.995, 3499.0}, {3000.0, 3499.9},
                                                              {3000.0, 3500.0}, {4000.0, 5000.0}, {4500.0, 5000.0},
                                                              {1500.0, 1400.0}, {0, 999.0}})
    EXPECT_EQ(q.steps_between(run.id(), "loss", w0, w1), expected(w0, w1)) << "[" << w0 << ", " << w1 << "]";
  EXPECT_EQ(expected(3000.0, 3499.9), std::nullopt) << "the pause must be empty for this test to mean anything";
  EXPECT_EQ(q.steps_between(run.id(), "absent", 0, 1e9), std::nullopt);
}

TEST(TrackerQuery, RunsFilterAndSort) {
  const std::string path = test_path("tracker.db");
  {
    Store store(path);
    for (int i = 0; i < 6; ++i) {
      RunSpec spec{i < 3 ? "alpha" : "beta", "r" + std::to_string(i)};
      spec.tags = {i % 2 ? "odd" : "even"};
      spec.config = {{"lr", 0.001 * (i + 1)}, {"opt", {{"name", i < 2 ? "adam" : "sgd"}}}};
      tracker::Run run = tracker::Run::create(store, spec);
      run.log(0, {{"val/loss", 10.0 - i}});
      if (i == 5) run.finish("failed");
    }
    store.flush();
  }
  Query q(path);
  auto names = [](const std::vector<RunRecord>& runs) {
    std::string out;
    for (const auto& r : runs) out += r.name + " ";
    return out;
  };
  EXPECT_EQ(names(q.runs()), "r0 r1 r2 r3 r4 r5 ");
  EXPECT_EQ(names(q.runs({"alpha"})), "r0 r1 r2 ");
  EXPECT_EQ(names(q.runs({"", "failed"})), "r5 ");
  EXPECT_EQ(names(q.runs({"", "", "odd"})), "r1 r3 r5 ");
  RunFilter f;
  f.where = {"config.lr>=0.003", "config.opt.name=sgd"};
  f.sort_by = "summary.val/loss";
  EXPECT_EQ(names(q.runs(f)), "r5 r4 r3 r2 ");
  f.descending = true;
  f.limit = 2;
  EXPECT_EQ(names(q.runs(f)), "r2 r3 ");
  f = {};
  f.where = {"summary.val/loss.min<7"};
  EXPECT_EQ(names(q.runs(f)), "r4 r5 ");
  f.where = {"nonsense"};
  EXPECT_THROW(q.runs(f), std::invalid_argument);
}

}  // namespace
}  // namespace tracker
