// Sweeps through a real coordinator and real workers running synthetic jobs: ASHA stops exactly
// the trials its rule says, a coordinator killed mid-sweep neither repeats nor loses a trial,
// and `sweep rerun --failed` runs a grid's failed points again. Trials are counted by what the
// jobs themselves wrote: their runs in the coordinator's tracker database.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>

#include "coordinator/sweep/asha.h"
#include "coordinator/synthetic/synthetic.h"
#include "tests/cluster.h"
#include "tracker/query/query.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class SweepCluster : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = cluster_dir(); }

  int64_t create(const std::string& endpoint, const json& definition) {
    static int n = 0;
    const std::string path = dir_ + "/sweep" + std::to_string(++n) + ".json";
    std::ofstream(path) << definition.dump();
    const I3labResult r = i3lab({"sweep", path, "--coordinator", endpoint});
    if (r.status != 0) {
      ADD_FAILURE() << "sweep failed: " << r.err;
      return -1;
    }
    return std::stoll(r.out);
  }

  static json show(const std::string& endpoint, int64_t id) {
    const I3labResult r = i3lab({"sweep", "show", std::to_string(id), "--coordinator", endpoint, "--json"});
    if (r.status != 0) return nullptr;
    return json::parse(r.out, nullptr, false);
  }

  static bool ended(const json& s) { return s.is_object() && s["status"] != "running"; }

  // The runs the trials' jobs wrote into the coordinator's database, by name.
  std::map<std::string, tracker::RunRecord> runs_of_sweep(int64_t id) const {
    std::map<std::string, tracker::RunRecord> out;
    tracker::RunFilter filter;
    filter.where = {"group=sweep-" + std::to_string(id)};
    for (const tracker::RunRecord& r : tracker::Query(dir_ + "/i3lab.db").runs(filter)) {
      EXPECT_FALSE(out.count(r.name)) << "two runs named " << r.name;
      out[r.name] = r;
    }
    return out;
  }

  std::string dir_;
};

TEST_F(SweepCluster, AshaStopsExactlyTheTrialsItsRuleSays) {
  Coordinator c = start_coordinator(dir_);
  auto worker = start_worker(dir_, c.endpoint, "w1");
  // One trial at a time and no noise: the order of arrival at each rung, and so every
  // decision, is known in advance.
  const std::vector<double> xs = {1.0, 0.3, 1.5, 0.5, -0.4, 0.2, 2.0, 0.35};
  const int64_t steps = 45;
  const json definition = {{"method", "grid"},
                           {"metric", {{"name", "loss"}, {"goal", "minimize"}}},
                           {"parameters", {{"x", {{"values", xs}}}}},
                           {"early_terminate", {{"type", "asha"}, {"min_steps", 5}, {"eta", 2}, {"max_steps", steps}}},
                           {"max_concurrent", 1},
                           {"job", {{"kind", "synthetic"}, {"config", {{"steps", steps}, {"step_ms", 15}, {"noise", 0}}}}}};
  const int64_t id = create(c.endpoint, definition);
  json s;
  ASSERT_TRUE(eventually([&] { return ended(s = show(c.endpoint, id)); }, std::chrono::seconds(120))) << s.dump();

  // What the rule says: rungs at 5, 10, 20, 40; a trial stops at the first rung where it is not
  // in the top ceil(n/2) of the values there so far.
  sweep::EarlyTerminate e;
  e.enabled = true, e.min_steps = 5, e.eta = 2, e.max_steps = steps;
  std::vector<std::vector<double>> rungs(4);
  std::vector<std::string> expected;
  for (double x : xs) {
    synthetic::Config config;
    config.x = x;
    std::string status = "succeeded";
    for (size_t k = 0; sweep::rung_step(e, k) > 0; ++k) {
      const double v = synthetic::objective(config, sweep::rung_step(e, k));
      const bool goes_on = sweep::asha_continues(rungs[k], v, 2, false);
      rungs[k].push_back(v);
      if (!goes_on) {
        status = "early-stopped";
        break;
      }
    }
    expected.push_back(status);
  }
  ASSERT_EQ(s["trials"].size(), xs.size());
  std::vector<std::string> got;
  for (const json& t : s["trials"]) got.push_back(t["status"]);
  EXPECT_EQ(got, expected) << s.dump(1);
  EXPECT_EQ(s["status"], "finished");
  EXPECT_EQ(s["best"]["params"]["x"], 0.3);

  // The jobs' own runs: one per trial, stopped ones ended "stopped" early, the others ran every step.
  const std::map<std::string, tracker::RunRecord> runs = runs_of_sweep(id);
  ASSERT_EQ(runs.size(), xs.size());
  for (size_t i = 0; i < xs.size(); ++i) {
    const tracker::RunRecord& r = runs.at("sweep-" + std::to_string(id) + "-" + std::to_string(i));
    EXPECT_EQ(r.config["x"], xs[i]);
    const int64_t last = r.summary["loss"]["last_step"].get<int64_t>();
    if (expected[i] == "early-stopped") {
      EXPECT_EQ(r.status, "stopped") << i;
      EXPECT_LT(last, steps) << i;
    } else {
      EXPECT_EQ(r.status, "finished") << i;
      EXPECT_EQ(last, steps) << i;
    }
  }
}

TEST_F(SweepCluster, ACoordinatorKilledMidSweepNeitherRepeatsNorLosesATrial) {
  Coordinator c = start_coordinator(dir_);
  const std::string endpoint = c.endpoint;
  auto w1 = start_worker(dir_, endpoint, "w1", {"--slots", "1"});
  auto w2 = start_worker(dir_, endpoint, "w2", {"--slots", "1"});
  const json definition = {{"method", "random"},
                           {"metric", {{"name", "loss"}}},
                           {"parameters", {{"x", {{"min", -1.0}, {"max", 1.0}}}, {"y", {{"min", -1.0}, {"max", 1.0}}}}},
                           {"run_cap", 8},
                           {"seed", 11},
                           {"job", {{"kind", "synthetic"}, {"config", {{"steps", 60}, {"step_ms", 20}}}}}};
  const int64_t id = create(endpoint, definition);
  json s;
  ASSERT_TRUE(eventually([&] { s = show(endpoint, id); return s.is_object() && s["trials"].size() >= 3; }, std::chrono::seconds(60)));
  c.proc->signal(SIGKILL);
  c.proc->wait();
  std::this_thread::sleep_for(std::chrono::seconds(2));
  Coordinator again = start_coordinator(dir_, endpoint);
  ASSERT_TRUE(eventually([&] { return ended(s = show(endpoint, id)); }, std::chrono::seconds(120))) << s.dump();
  EXPECT_EQ(s["status"], "finished");
  ASSERT_EQ(s["trials"].size(), 8u) << s.dump(1);
  std::set<int64_t> points;
  std::set<std::string> params;
  for (const json& t : s["trials"]) {
    EXPECT_EQ(t["status"], "succeeded") << t.dump();
    points.insert(t["point"].get<int64_t>());
    params.insert(t["params"].dump());
  }
  EXPECT_EQ(points, (std::set<int64_t>{0, 1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(params.size(), 8u);
  // Each trial's job wrote exactly one run, finished, with every step.
  const std::map<std::string, tracker::RunRecord> runs = runs_of_sweep(id);
  ASSERT_EQ(runs.size(), 8u);
  for (const auto& [name, r] : runs) {
    EXPECT_EQ(r.status, "finished") << name;
    EXPECT_EQ(r.summary["loss"]["count"], 60) << name;
  }
}

TEST_F(SweepCluster, RerunFailedRunsAGridsFailedPointsAgainOnce) {
  Coordinator c = start_coordinator(dir_);
  auto worker = start_worker(dir_, c.endpoint, "w1");
  const std::string flag = dir_ + "/flaky";
  write_file(flag, "fail while this exists\n");
  const json definition = {{"method", "grid"},
                           {"metric", {{"name", "loss"}}},
                           {"parameters", {{"x", {{"values", {0.0, 0.5, 1.0}}}}, {"fail_if_exists", {{"values", {"", flag}}}}}},
                           {"job", {{"kind", "synthetic"}, {"max_restarts", 0}, {"config", {{"steps", 10}, {"step_ms", 5}}}}}};
  const int64_t id = create(c.endpoint, definition);
  json s;
  ASSERT_TRUE(eventually([&] { return ended(s = show(c.endpoint, id)); }, std::chrono::seconds(60))) << s.dump();
  EXPECT_EQ(s["counts"]["failed"], 3) << s.dump(1);
  EXPECT_EQ(s["counts"]["succeeded"], 3);

  fs::remove(flag);
  const I3labResult r = i3lab({"sweep", "rerun", std::to_string(id), "--failed", "--coordinator", c.endpoint});
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("runs again as trial 6"), std::string::npos) << r.out;
  ASSERT_TRUE(eventually([&] { return ended(s = show(c.endpoint, id)); }, std::chrono::seconds(60))) << s.dump();
  EXPECT_EQ(s["status"], "finished");
  ASSERT_EQ(s["trials"].size(), 9u);
  std::map<int64_t, int> succeeded;  // per grid point
  for (const json& t : s["trials"]) {
    if (t["status"] == "succeeded") ++succeeded[t["point"].get<int64_t>()];
    if (t["status"] == "failed") {
      EXPECT_TRUE(t["replaced_by"].is_number()) << t.dump();
    }
  }
  EXPECT_EQ(succeeded, (std::map<int64_t, int>{{0, 1}, {1, 1}, {2, 1}, {3, 1}, {4, 1}, {5, 1}}));
  // Nothing left to re-run: a second request makes no trial.
  const I3labResult again = i3lab({"sweep", "rerun", std::to_string(id), "--failed", "--coordinator", c.endpoint});
  EXPECT_NE(again.out.find("no trial failed"), std::string::npos) << again.out;
  // The jobs' runs: the 3 first failures and 6 that finished.
  int finished = 0, failed = 0;
  for (const auto& [name, run] : runs_of_sweep(id)) (run.status == "finished" ? finished : failed) += 1;
  EXPECT_EQ(finished, 6);
  EXPECT_EQ(failed, 3);
}

TEST_F(SweepCluster, UpRunsAYamlSweepToItsEndAndNamesTheBestTrial) {
  const std::string path = dir_ + "/sweep.yaml";
  write_file(path,
             "method: bayes\n"
             "metric: {name: loss, goal: minimize}\n"
             "parameters:\n"
             "  x: {min: -1.0, max: 1.0}\n"
             "  lr: {distribution: log_uniform_values, min: 1.0e-5, max: 1.0e-1}\n"
             "early_terminate: {type: hyperband, min_iter: 10, eta: 3}\n"
             "run_cap: 12\n"
             "max_concurrent: 2\n"
             "job:\n"
             "  kind: synthetic\n"
             "  config: {steps: 60, step_ms: 5}\n");
  const I3labResult r = i3lab({"up", path, "--workers", "2", "--exit-when-done", "--http", "127.0.0.1:0", "--listen",
                               "tcp://127.0.0.1:*", "--db", dir_ + "/i3lab.db", "--dir", dir_ + "/local"});
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("sweep 1 finished: run_cap 12 trials have run"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("best trial: "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("dashboard http://127.0.0.1:"), std::string::npos) << r.err;
  EXPECT_EQ(runs_of_sweep(1).size(), 12u);
  // Seen once under a loaded full suite: two runs of one trial. What the coordinator said then:
  if (HasFailure()) ADD_FAILURE() << "i3lab up's output:\n" << r.out << r.err << file_contents(dir_ + "/local/coordinator.log");
}

// A sweep file as W&B's documentation writes one (program, no job) and a training script as
// W&B's documentation writes one, its import changed: the trials run the script with
// --key=value arguments and wandb.config, and their metrics reach the sweep through the
// dashboard's API.
TEST_F(SweepCluster, AWandbSweepFileAndScriptRunUnchanged) {
  write_file(dir_ + "/sweep.yaml",
             "program: train.py\n"
             "method: bayes\n"
             "name: sweep\n"
             "metric:\n"
             "  goal: minimize\n"
             "  name: validation_loss\n"
             "parameters:\n"
             "  batch_size:\n"
             "    values: [16, 32, 64]\n"
             "  epochs:\n"
             "    values: [5, 10, 15]\n"
             "  lr:\n"
             "    max: 0.1\n"
             "    min: 0.0001\n");
  write_file(dir_ + "/train.py",
             "import math\n"
             "import sys\n"
             "import i3lab_client as wandb  # was: import wandb\n"
             "\n"
             "def main():\n"
             "    wandb.init(project='my-first-sweep')\n"
             "    lr = wandb.config.lr\n"
             "    bs = wandb.config.batch_size\n"
             "    epochs = wandb.config.epochs\n"
             "    print('arguments:', ' '.join(sorted(sys.argv[1:])))\n"
             "    for epoch in range(epochs):\n"
             "        val_loss = (math.log10(lr) + 2.5) ** 2 + bs / 640 + 1 / (epoch + 1)\n"
             "        wandb.log({'epoch': epoch, 'validation_loss': val_loss})\n"
             "    wandb.finish()\n"
             "\n"
             "main()\n");
  setenv("PYTHONPATH", I3LAB_SOURCE_DIR "/clients/python", 1);  // inherited by the worker and its jobs
  Coordinator c = start_coordinator(dir_, "tcp://127.0.0.1:*", {"--http", "127.0.0.1:0"});
  auto w1 = start_worker(dir_, c.endpoint, "w1", {"--slots", "2"});
  const I3labResult made = i3lab({"sweep", dir_ + "/sweep.yaml", "--coordinator", c.endpoint});
  ASSERT_EQ(made.status, 0) << made.err;
  const int64_t id = std::stoll(made.out);
  // W&B's file has no run_cap: it runs until stopped, as a W&B sweep does until its agents stop.
  json s;
  auto reported = [&] {
    s = show(c.endpoint, id);
    int n = 0;
    if (s.is_object())
      for (const json& t : s["trials"]) n += t["status"] == "succeeded" && t["value"].is_number();
    return n >= 4;
  };
  ASSERT_TRUE(eventually(reported, std::chrono::seconds(90))) << s.dump(1) << w1->stderr_text();
  const I3labResult cancel = i3lab({"sweep", "cancel", std::to_string(id), "--coordinator", c.endpoint});
  ASSERT_EQ(cancel.status, 0) << cancel.err;
  ASSERT_TRUE(eventually([&] { s = show(c.endpoint, id); return ended(s) && s["counts"].value("running", 0) == 0 && s["counts"].value("queued", 0) == 0; }));
  EXPECT_EQ(s["status"], "cancelled");
  const std::map<std::string, tracker::RunRecord> runs = runs_of_sweep(id);
  int checked = 0;
  for (const json& t : s["trials"]) {
    if (t["status"] != "succeeded") continue;
    const tracker::RunRecord& r = runs.at("sweep-" + std::to_string(id) + "-" + std::to_string(t["trial"].get<int64_t>()));
    EXPECT_EQ(r.project, "my-first-sweep");
    EXPECT_EQ(r.config["lr"], t["params"]["lr"]);  // wandb.config holds the trial's parameters
    EXPECT_EQ(r.config["epochs"], t["params"]["epochs"]);
    EXPECT_EQ(r.summary["validation_loss"]["count"], t["params"]["epochs"]);
    EXPECT_EQ(r.summary["validation_loss"]["last"].get<double>(), t["value"].get<double>());
    // The arguments W&B's agent would give.
    const I3labResult logs = i3lab({"logs", std::to_string(t["job"].get<int64_t>()), "--coordinator", c.endpoint});
    EXPECT_NE(logs.out.find("--epochs=" + t["params"]["epochs"].dump()), std::string::npos) << logs.out;
    ++checked;
  }
  EXPECT_GE(checked, 4);
}

TEST_F(SweepCluster, ABadSweepFileIsRefusedBeforeAnythingRuns) {
  Coordinator c = start_coordinator(dir_);
  const std::string path = dir_ + "/bad.yaml";
  write_file(path, "method: random\nparameters:\n  z: {min: 0.0, max: 1.0}\njob: {kind: synthetic}\n");
  const I3labResult r = i3lab({"sweep", path, "--coordinator", c.endpoint});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find(path + ": parameters.z is not a key of the synthetic job's config"), std::string::npos) << r.err;
  write_file(path, "method: random\nparameters:\n  x: {min: 1.0, max: 0.0}\njob: {kind: synthetic}\nlearning: 1\n");
  const I3labResult empty = i3lab({"sweep", path, "--coordinator", c.endpoint});
  EXPECT_EQ(empty.status, 1);
  EXPECT_NE(empty.err.find("learning is not a sweep key"), std::string::npos) << empty.err;
  const I3labResult list = i3lab({"sweeps", "--coordinator", c.endpoint, "--json"});
  EXPECT_EQ(list.out, "[]\n");
}

}  // namespace
