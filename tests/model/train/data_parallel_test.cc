// Data-parallel training as users launch it: several real `i3lab train` processes given
// torchrun's variables, meeting on 127.0.0.1 and averaging gradients over Gloo.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "model/dist/world.h"
#include "model/io/model_folder.h"
#include "tests/cluster.h"
#include "tracker/query/query.h"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class DataParallelTraining : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = cluster_dir();
    json config = tiny_training(dir_, 12);  // 12 steps, validation, samples and a checkpoint every 6
    config["optim"]["lr_decay_iters"] = 20;
    config["logging"]["eval_interval"] = 6;
    config["logging"]["sample_tokens"] = 5;
    config["checkpoint"]["interval"] = 6;
    config["distributed"] = {{"timeout_s", 30}};
    config_ = dir_ + "/tiny.json";
    write_file(config_, config.dump(2));
  }

  // Starts `ranks` processes of `i3lab train ARGS --db DB`, as torchrun would on one machine
  // (rank 0 alone writes DB), with one thread each so that runs repeat bit for bit.
  std::vector<std::unique_ptr<Proc>> launch(int ranks, const std::string& db, const std::vector<std::string>& args) {
    const int port = free_port();
    std::vector<std::unique_ptr<Proc>> out;
    for (int r = 0; r < ranks; ++r) {
      std::vector<std::string> argv = {"train"};
      argv.insert(argv.end(), args.begin(), args.end());
      argv.insert(argv.end(), {"--db", db});
      out.push_back(std::make_unique<Proc>(argv, db + ".rank" + std::to_string(r) + ".err",
                                           std::map<std::string, std::string>{{"RANK", std::to_string(r)},
                                                                              {"WORLD_SIZE", std::to_string(ranks)},
                                                                              {"LOCAL_RANK", std::to_string(r)},
                                                                              {"MASTER_ADDR", "127.0.0.1"},
                                                                              {"MASTER_PORT", std::to_string(port)},
                                                                              {"I3LAB_THREADS", "1,1"}}));
    }
    return out;
  }

  // Runs `ranks` ranks to the end (of the test config, unless ARGS resume a run or name the
  // config themselves); rank 0's run id.
  int64_t train(int ranks, const std::string& db, std::vector<std::string> args) {
    if (std::find(args.begin(), args.end(), "--resume") == args.end() && std::find(args.begin(), args.end(), config_) == args.end())
      args.insert(args.begin(), config_);
    auto procs = launch(ranks, db, args);
    const std::string id = procs[0]->read_line(std::chrono::seconds(120));
    for (int r = 0; r < ranks; ++r) EXPECT_EQ(procs[r]->wait(), 0) << "rank " << r << ":\n" << procs[r]->stderr_text();
    return id.empty() ? 0 : std::stoll(id);
  }

  static std::vector<std::pair<int64_t, double>> series(const std::string& db, int64_t run, const std::string& key) {
    std::vector<std::pair<int64_t, double>> out;
    for (const auto& b : tracker::Query(db).points(run, key, 0, 1 << 30)) out.emplace_back(b.last_step, b.last);
    return out;
  }

  // Each step's value of `key` in both runs, equal to `rel` relative.
  static void expect_close(const std::vector<std::pair<int64_t, double>>& a, const std::vector<std::pair<int64_t, double>>& b,
                           double rel, const std::string& what) {
    ASSERT_EQ(a.size(), b.size()) << what;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].first, b[i].first) << what;
      EXPECT_LE(std::abs(a[i].second - b[i].second), rel * std::abs(b[i].second)) << what << " at step " << a[i].first;
    }
  }

  // The weights of run `run`'s checkpoint `version` ("latest", "v0", …).
  std::vector<std::pair<std::string, torch::Tensor>> weights(const std::string& db, int64_t run, const std::string& version) {
    tracker::Query q(db);
    const std::string dir = dir_ + "/weights-" + std::to_string(run) + "-" + version + "-" + fs::path(db).filename().string();
    q.fetch_artifact(q.artifact("ckpt-" + q.run(run).uid.substr(0, 8) + ":" + version), dir);
    return i3::read_weights(dir);
  }

  void expect_two_ranks_train_like_one(const std::vector<std::string>& sets);
  std::string launch_endless(const std::string& db, int step, std::vector<std::unique_ptr<Proc>>& procs);

  std::string dir_, config_;
};

TEST(World, ReadsTorchrunsAndSlurmsVariables) {
  auto env = [](std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  };
  EXPECT_FALSE(i3::world_from_env(env({})).distributed());
  const i3::World t =
      i3::world_from_env(env({{"RANK", "1"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "10.0.0.2"}, {"MASTER_PORT", "29400"}}));
  EXPECT_EQ(t.launcher, "torchrun");
  EXPECT_EQ(t.rank, 1);
  EXPECT_EQ(t.size, 4);
  EXPECT_EQ(t.master_addr, "10.0.0.2");
  EXPECT_EQ(t.master_port, 29400);
  const i3::World s = i3::world_from_env(env({{"SLURM_PROCID", "2"}, {"SLURM_NTASKS", "3"}, {"SLURM_LOCALID", "0"},
                                              {"SLURM_STEP_NODELIST", "gpu[07-09,12],cpu1"}, {"SLURM_JOB_ID", "1234"}, {"SLURM_STEP_ID", "1"}}));
  EXPECT_EQ(s.launcher, "slurm");
  EXPECT_EQ(s.rank, 2);
  EXPECT_EQ(s.master_addr, "gpu07");
  EXPECT_EQ(s.master_port, 20000 + (1234 * 16 + 1) % 20000);
  EXPECT_EQ(s.store_prefix, "i3lab/slurm-1234.1");
  // A batch script's own shell (no step), or a coordinator's job on a worker Slurm started:
  // Slurm's task variables do not make it a rank.
  EXPECT_FALSE(i3::world_from_env(env({{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "4"}, {"SLURM_JOB_ID", "7"}})).distributed());
  EXPECT_FALSE(i3::world_from_env(env({{"RANK", "0"}, {"WORLD_SIZE", "1"}, {"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "4"},
                                       {"SLURM_STEP_ID", "0"}}))
                   .distributed());
  // srun's step count wins over the job's.
  EXPECT_EQ(i3::world_from_env(env({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_STEP_NUM_TASKS", "2"}, {"SLURM_STEP_ID", "3"},
                                    {"SLURM_JOB_NODELIST", "n1"}, {"SLURM_JOB_ID", "9"}}))
                .size,
            2);
  // torchrun's static rendezvous: its agent serves the store.
  const i3::World agent = i3::world_from_env(env({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "29500"},
                                                  {"TORCHELASTIC_USE_AGENT_STORE", "True"}, {"TORCHELASTIC_RESTART_COUNT", "2"}}));
  EXPECT_TRUE(agent.agent_store);
  EXPECT_EQ(agent.store_prefix, "/worker/attempt_2");
  EXPECT_EQ(i3::first_slurm_host("n1,n2"), "n1");
  EXPECT_EQ(i3::first_slurm_host("node[3-4]-ib"), "node3-ib");
  auto error = [&](std::map<std::string, std::string> vars) {
    try {
      i3::world_from_env(env(std::move(vars)));
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), "environment variable RANK=\"2\" must be an integer in 0..1");
  EXPECT_EQ(error({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), "environment variable RANK=\"x\" must be an integer in 0..1");
  EXPECT_EQ(error({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "1"}}),
            "WORLD_SIZE is 2 but MASTER_ADDR is not set: no master to meet at");
  EXPECT_EQ(error({{"WORLD_SIZE", "2"}}), "environment variable RANK is not set, but WORLD_SIZE is: a data-parallel launcher sets both");
  EXPECT_EQ(error({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"}, {"SLURM_STEP_NODELIST", "[1-2]"}}),
            "Slurm node list \"[1-2]\" does not start with a host name");
}

// The equivalence: 2 ranks of batch b give the loss of 1 process of batch 2b at every
// step, and the same final parameters (with `sets` on both).
void DataParallelTraining::expect_two_ranks_train_like_one(const std::vector<std::string>& sets) {
  const std::string one_db = dir_ + "/one.db", two_db = dir_ + "/two.db";
  std::vector<std::string> one_args = sets, two_args = sets;
  one_args.insert(one_args.end(), {"--set", "data.batch_size=4"});
  const int64_t one = train(1, one_db, one_args);
  const int64_t two = train(2, two_db, two_args);
  ASSERT_GT(one, 0);
  ASSERT_GT(two, 0);
  expect_close(series(two_db, two, "train/loss"), series(one_db, one, "train/loss"), 1e-5, "train/loss");
  expect_close(series(two_db, two, "train/grad_norm"), series(one_db, one, "train/grad_norm"), 1e-4, "train/grad_norm");
  expect_close(series(two_db, two, "val/loss"), series(one_db, one, "val/loss"), 1e-5, "val/loss");
  EXPECT_EQ(series(two_db, two, "train/loss").size(), 12u);
  EXPECT_EQ(series(two_db, two, "train/tokens_seen"), series(one_db, one, "train/tokens_seen"));
  // The final weights: float32 sums in another order, which AdamW's normalisation magnifies
  // where a gradient is nearly zero, so "the same" means: apart by under 0.1% of how far the
  // last 6 steps moved them.
  const auto a = weights(one_db, one, "latest"), b = weights(two_db, two, "latest"), mid = weights(one_db, one, "v0");
  ASSERT_EQ(a.size(), b.size());
  double moved = 0, worst = 0;
  for (size_t i = 0; i < a.size(); ++i) moved = std::max(moved, (a[i].second - mid[i].second).abs().max().item<double>());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].first, b[i].first);
    const double diff = (a[i].second - b[i].second).abs().max().item<double>();
    EXPECT_LE(diff, 1e-3 * moved) << a[i].first << " (the last 6 steps moved weights by up to " << moved << ")";
    worst = std::max(worst, diff);
  }
  std::cerr << "largest weight difference " << worst << "; the last 6 steps moved weights by up to " << moved << "\n";
  // Rank 0 alone tracked the run, with every rank's own metrics in it.
  EXPECT_EQ(tracker::Query(two_db).runs().size(), 1u);
  for (int r = 0; r < 2; ++r) {
    const auto rss = series(two_db, two, "rank/" + std::to_string(r) + "/rss_bytes");
    ASSERT_EQ(rss.size(), 12u) << r;
    EXPECT_GT(rss.back().second, 1e6) << r;
    EXPECT_EQ(series(two_db, two, "rank/" + std::to_string(r) + "/comm_ms").size(), 12u);
  }
}

TEST_F(DataParallelTraining, TwoGlooRanksTrainLikeOneProcessWithTheirCombinedBatch) { expect_two_ranks_train_like_one({}); }

// The same with ~20 gradient buckets of 10 KB (sent in order during backward), two parameter
// groups (decayed and not) and 2 micro-batches per step (only the second one communicates).
TEST_F(DataParallelTraining, AndWithManyBucketsTwoParameterGroupsAndGradientAccumulation) {
  expect_two_ranks_train_like_one({"--set", "distributed.bucket_mb=0.01", "--set", "distributed.first_bucket_mb=0.01", "--set",
                                   "optim.decay_all=false", "--set", "optim.grad_accum=2"});
}

// A checkpoint of 2 ranks resumes on 1 process of the same global batch exactly where the 2
// ranks would have gone on: the sampler's position is global.
TEST_F(DataParallelTraining, ACheckpointResumesOnAnotherRankCountWithTheSameGlobalBatch) {
  const std::string straight_db = dir_ + "/straight.db", split_db = dir_ + "/split.db";
  const int64_t straight = train(2, straight_db, {});
  const int64_t split = train(2, split_db, {"--set", "train.max_iters=6"});
  ASSERT_GT(split, 0);
  const int64_t resumed =
      train(1, split_db, {"--resume", std::to_string(split), "--set", "data.batch_size=4", "--set", "train.max_iters=12"});
  EXPECT_EQ(resumed, split);
  expect_close(series(split_db, split, "train/loss"), series(straight_db, straight, "train/loss"), 1e-5, "train/loss");
  EXPECT_EQ(series(split_db, split, "train/loss").size(), 12u);
  // And back from 1 process to 2 ranks.
  const int64_t again = train(1, split_db, {config_, "--set", "data.batch_size=4", "--set", "train.max_iters=6"});
  const int64_t onto_two = train(2, split_db, {"--resume", std::to_string(again), "--set", "data.batch_size=2", "--set", "train.max_iters=12"});
  EXPECT_EQ(onto_two, again);
  expect_close(series(split_db, again, "train/loss"), series(straight_db, straight, "train/loss"), 1e-5, "1 → 2 ranks");
}

// Under torchrun's static rendezvous its agent serves the store and rank 0 only connects
// (tests/model/train/torchrun_agent.py plays the agent with python3-torch's TCPStore).
TEST_F(DataParallelTraining, TwoRanksMeetAtTorchrunsAgentStore) {
  if (std::system("/usr/bin/python3 -c 'import torch.distributed' 2>/dev/null") != 0)
    GTEST_SKIP() << "no python3-torch (scripts/setup --test-tools installs it)";
  const std::string db = dir_ + "/runs.db";
  const int status = std::system(("I3LAB_THREADS=1,1 /usr/bin/python3 " I3LAB_SOURCE_DIR "/tests/model/train/torchrun_agent.py " +
                                  std::to_string(free_port()) + " 2 " I3LAB_BINARY " train " + config_ + " --db " + db + " >" + dir_ +
                                  "/agent.out 2>&1")
                                     .c_str());
  ASSERT_EQ(status, 0) << file_contents(dir_ + "/agent.out");
  const std::string out = file_contents(dir_ + "/agent.out");
  EXPECT_NE(out.find("rank 1 finished at step 12"), std::string::npos) << out;
  EXPECT_EQ(tracker::Query(db).runs().size(), 1u);
  EXPECT_EQ(series(db, tracker::Query(db).runs()[0].id, "train/loss").size(), 12u);
}

// A master named by a host that does not resolve (a chroot without /etc/hosts, a typo) is an
// error at once that says what to set, not a connect loop until the timeout.
TEST_F(DataParallelTraining, AMasterThatDoesNotResolveIsAnErrorAtOnce) {
  Proc rank1({"train", config_, "--db", dir_ + "/runs.db"}, dir_ + "/rank1.err",
             {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "no-such-host.invalid"}, {"MASTER_PORT", std::to_string(free_port())}});
  ASSERT_TRUE(eventually([&] { return !rank1.alive(); }, std::chrono::seconds(30))) << "still trying to reach the master";
  EXPECT_NE(rank1.stderr_text().find("the master's address \"no-such-host.invalid\" (MASTER_ADDR, or the Slurm node list's first host) "
                                     "does not resolve here: set MASTER_ADDR to an address every rank reaches"),
            std::string::npos)
      << rank1.stderr_text();
}

// Starts 2 ranks training without end (no checkpoints or validation on the way) and waits for
// rank 0's progress line of `step`; rank 0's run id, or "" when that did not come.
std::string DataParallelTraining::launch_endless(const std::string& db, int step, std::vector<std::unique_ptr<Proc>>& procs) {
  procs = launch(2, db, {config_, "--set", "train.max_iters=100000", "--set", "checkpoint.interval=0", "--set", "logging.eval_interval=0"});
  const std::string id = procs[0]->read_line(std::chrono::seconds(120));
  const std::string line = "step " + std::to_string(step) + "/";
  if (id.empty() || !eventually([&] { return procs[0]->stderr_text().find(line) != std::string::npos; }, std::chrono::seconds(120)))
    return "";
  return id;
}

// A rank killed mid-run: the other fails within distributed.timeout_s (30 s here) with an error
// that says what happened, and its run is marked failed.
TEST_F(DataParallelTraining, AKilledRankMakesTheOtherFailWithinTheTimeout) {
  const std::string db = dir_ + "/runs.db";
  std::vector<std::unique_ptr<Proc>> procs;
  const std::string id = launch_endless(db, 20, procs);
  ASSERT_FALSE(id.empty()) << procs[0]->stderr_text();
  procs[1]->signal(SIGKILL);
  procs[1]->wait();
  const auto killed = std::chrono::steady_clock::now();
  ASSERT_TRUE(eventually([&] { return !procs[0]->alive(); }, std::chrono::seconds(45))) << "rank 0 still running";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::cerr << "rank 0 failed " << seconds << " s after rank 1 was killed\n";
  const std::string err = procs[0]->stderr_text();
  EXPECT_NE(err.find("error: rank 0 of 2"), std::string::npos) << err;
  EXPECT_NE(err.find("another rank stopped, was killed or cannot be reached"), std::string::npos) << err;
  EXPECT_EQ(tracker::Query(db).run(std::stoll(id)).status, "failed");
}

// SIGTERM to one rank stops both after the same step; rank 0 checkpoints and marks the run
// stopped.
TEST_F(DataParallelTraining, AStopRequestToOneRankStopsEveryRankAtTheSameStep) {
  const std::string db = dir_ + "/runs.db";
  std::vector<std::unique_ptr<Proc>> procs;
  const std::string id = launch_endless(db, 10, procs);
  ASSERT_FALSE(id.empty()) << procs[0]->stderr_text();
  procs[1]->signal(SIGTERM);
  EXPECT_EQ(procs[1]->wait(), 0) << procs[1]->stderr_text();
  EXPECT_EQ(procs[0]->wait(), 0) << procs[0]->stderr_text();
  const tracker::RunRecord run = tracker::Query(db).run(std::stoll(id));
  EXPECT_EQ(run.status, "stopped");
  const std::string r0 = procs[0]->stderr_text(), r1 = procs[1]->stderr_text();
  const size_t at = r1.find("rank 1 stopped at step ");
  ASSERT_NE(at, std::string::npos) << r1;
  const std::string step = r1.substr(at + 23, r1.find('\n', at) - at - 23);
  EXPECT_NE(r0.find("run " + id + " stopped at step " + step), std::string::npos) << r0;
  const tracker::ArtifactVersion latest = tracker::Query(db).artifact("ckpt-" + run.uid.substr(0, 8) + ":latest");
  EXPECT_EQ(latest.metadata["step"], std::stoll(step));
}

}  // namespace
