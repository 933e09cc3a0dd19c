// Training as a user runs it: `i3lab train` and `i3lab eval` processes on a real corpus file,
// tracked in a real database.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <set>
#include <thread>

#include "model/config/train_config.h"
#include "model/io/safetensors.h"
#include "tests/i3lab_process.h"
#include "tests/test_paths.h"
#include "tracker/db/content.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// --- training runs -------------------------------------------------------------------------------

struct Point {
  int64_t step;
  double value;
};

class Training : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("I3LAB_THREADS", "1,1", 1);  // one thread: bit-identical arithmetic run to run
    dir_ = test_path("dir");
    fs::create_directories(dir_);
    // 160 one-line documents: the sample text eight times.
    const std::string text = file_contents(I3LAB_SOURCE_DIR "/tests/data/sample.txt");
    std::string corpus;
    for (int i = 0; i < 8; ++i) corpus += text;
    corpus_ = dir_ + "/corpus.txt";
    write_file(corpus_, corpus);
    const I3labResult vocab = i3lab({"tokenizer", "build", "--out", dir_ + "/vocab.json", corpus_});
    ASSERT_EQ(vocab.status, 0) << vocab.err;
    db_ = dir_ + "/runs.db";
    config_ = dir_ + "/tiny.json";
    const json config = {
        {"project", "test"},
        {"model", {{"preset", "i3-tiny"}}},
        {"data",
         {{"vocab", dir_ + "/vocab.json"},
          {"sources", {{{"path", corpus_}, {"separator", "\n"}}}},
          {"val_fraction", 0.2},
          {"batch_size", 2},
          {"cache_dir", dir_ + "/cache"}}},
        {"optim", {{"lr", 1e-2}, {"warmup_iters", 2}, {"lr_decay_iters", 20}}},
        {"train", {{"max_iters", 20}, {"device", "cpu"}}},
        {"logging", {{"log_interval", 1}, {"eval_interval", 5}, {"eval_batches", 2}, {"sample_tokens", 5}}},
        {"checkpoint", {{"interval", 0}}}};
    write_file(config_, config.dump(2));
  }

  // Trains with the test config and `extra` flags; returns the run id it printed.
  int64_t train(const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"train", config_, "--db", db_};
    args.insert(args.end(), extra.begin(), extra.end());
    const I3labResult r = i3lab(args);
    EXPECT_EQ(r.status, 0) << r.err;
    return std::stoll(r.out);
  }

  std::vector<Point> series(int64_t run, const std::string& key) {
    std::vector<Point> out;
    for (const auto& b : tracker::Query(db_).points(run, key, 0, 1 << 30)) out.push_back({b.last_step, b.last});
    return out;
  }

  // Expects runs a and b to have logged bit-identical values at the same steps.
  void expect_same_history(int64_t a, int64_t b, const std::vector<std::string>& keys) {
    for (const auto& key : keys) {
      const std::vector<Point> pa = series(a, key), pb = series(b, key);
      ASSERT_EQ(pa.size(), pb.size()) << key;
      for (size_t i = 0; i < pa.size(); ++i) {
        EXPECT_EQ(pa[i].step, pb[i].step) << key;
        EXPECT_EQ(pa[i].value, pb[i].value) << key << " at step " << pa[i].step;
      }
    }
  }

  std::string checkpoint_name(int64_t run) { return "ckpt-" + tracker::Query(db_).run(run).uid.substr(0, 8); }

  std::string dir_, corpus_, db_, config_;
};

TEST_F(Training, ResumeIsExactAndRewindsHistory) {
  const int64_t straight = train({});
  // 13 steps with a checkpoint at 10 (v0) and at the end (v1); then back to step 10 and on to 20.
  const int64_t split = train({"--set", "train.max_iters=13", "--set", "checkpoint.interval=10"});
  EXPECT_EQ(series(split, "train/loss").size(), 13u);
  const I3labResult resumed =
      i3lab({"train", "--resume", std::to_string(split), "--from", "v0", "--db", db_, "--set", "train.max_iters=20"});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(std::stoll(resumed.out), split);

  expect_same_history(straight, split, {"train/loss", "train/grad_norm", "train/learning_rate", "val/loss", "train/tokens_seen"});
  EXPECT_EQ(series(straight, "train/loss").size(), 20u);
  const std::vector<Point> val = series(split, "val/loss");  // step 13's evaluation was rewound
  std::vector<int64_t> val_steps;
  for (const auto& p : val) val_steps.push_back(p.step);
  EXPECT_EQ(val_steps, (std::vector<int64_t>{0, 5, 10, 15, 20}));
  EXPECT_EQ(tracker::Query(db_).table_steps(split, "samples"), (std::vector<int64_t>{0, 5, 10, 15, 20}));
  EXPECT_LT(val.back().value, val.front().value);  // it learned something

  const tracker::RunRecord record = tracker::Query(db_).run(split);
  EXPECT_EQ(record.status, "finished");
  EXPECT_EQ(record.config["train"]["max_iters"], 20);  // the stored config follows --set on resume
  const tracker::ArtifactVersion latest = tracker::Query(db_).artifact(checkpoint_name(split) + ":latest");
  EXPECT_EQ(latest.version, 2);
  EXPECT_EQ(latest.metadata["step"], 20);
  std::vector<std::string> files;
  for (const auto& f : latest.files) files.push_back(f.path);
  std::sort(files.begin(), files.end());
  EXPECT_EQ(files, (std::vector<std::string>{"config.json", "model.safetensors", "optimizer.safetensors",
                                             "tokenizer.json", "trainer_state.json"}));
  // "best" is the checkpoint with the lowest validation loss.
  const tracker::ArtifactVersion best = tracker::Query(db_).artifact(checkpoint_name(split) + ":best");
  double lowest = INFINITY;
  for (const auto& v : tracker::Query(db_).artifacts())
    if (v.name == checkpoint_name(split)) lowest = std::min(lowest, v.metadata["val_loss"].get<double>());
  EXPECT_EQ(best.metadata["val_loss"].get<double>(), lowest);
}

TEST_F(Training, ResumeIsExactWithTheEpochSampler) {
  const std::vector<std::string> epoch = {"--set", "data.sampler=epoch", "--set", "logging.eval_interval=0"};
  std::vector<std::string> args = epoch;
  args.insert(args.end(), {"--set", "train.max_iters=12"});
  const int64_t straight = train(args);
  args = epoch;
  args.insert(args.end(), {"--set", "train.max_iters=5"});
  const int64_t split = train(args);
  const I3labResult resumed = i3lab({"train", "--resume", std::to_string(split), "--db", db_, "--set", "train.max_iters=12"});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  expect_same_history(straight, split, {"train/loss", "train/grad_norm"});
  EXPECT_EQ(series(split, "train/loss").size(), 12u);
}

// checkpoint.keep_last keeps the newest N checkpoints plus "best" and any another run used,
// and their deleted files leave the content store.
TEST_F(Training, KeepLastDeletesOldCheckpointsButNotBestOrUsedOnes) {
  const std::vector<std::string> keep = {"--set", "checkpoint.interval=2", "--set", "checkpoint.keep_last=2",
                                         "--set", "logging.eval_interval=0"};
  std::vector<std::string> args = keep;
  args.insert(args.end(), {"--set", "train.max_iters=8"});
  const int64_t run = train(args);  // checkpoints v0..v3 at steps 2, 4, 6, 8
  const std::string name = checkpoint_name(run);
  auto versions = [&] {
    std::set<int64_t> out;
    for (const auto& v : tracker::Query(db_).artifacts())
      if (v.name == name) out.insert(v.version);
    return out;
  };
  const int64_t best = tracker::Query(db_).artifact(name + ":best").version;
  std::set<int64_t> expected = {2, 3, best};
  EXPECT_EQ(versions(), expected);

  // An evaluation uses v2; training on writes v4 and v5: v2 stays for the evaluation's lineage.
  const I3labResult e = i3lab({"eval", "--model", "artifact:" + name + ":v2", "--data", corpus_, "--max-windows", "2", "--db", db_});
  ASSERT_EQ(e.status, 0) << e.err;
  const I3labResult resumed = i3lab({"train", "--resume", std::to_string(run), "--db", db_, "--set", "train.max_iters=12"});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  const int64_t best_now = tracker::Query(db_).artifact(name + ":best").version;
  if (best_now != 3) {
    EXPECT_NE(resumed.err.find("deleted checkpoint " + name + ":v3 (checkpoint.keep_last 2)"), std::string::npos) << resumed.err;
  }
  expected = {2, 4, 5, best_now};
  EXPECT_EQ(versions(), expected);

  // The content store holds exactly the files of the versions left.
  std::set<std::string> held;
  for (const auto& v : tracker::Query(db_).artifacts())
    for (const auto& f : v.files) held.insert(f.sha256);
  std::set<std::string> stored;
  for (const auto& entry : fs::recursive_directory_iterator(tracker::ContentStore(db_).root() + "/sha256"))
    if (entry.is_regular_file())
      stored.insert(entry.path().parent_path().filename().string() + entry.path().filename().string());
  EXPECT_EQ(stored, held);
}

TEST_F(Training, GradientAccumulationMatchesOneBigBatchAndWatchLogsHistograms) {
  // Batch 2 in one pass, or batch 1 twice with accumulation: the same windows in the same order.
  const std::vector<std::string> common = {"--set", "train.max_iters=5", "--set", "logging.eval_interval=0"};
  std::vector<std::string> args = common;
  const int64_t big = train(args);
  args.insert(args.end(), {"--set", "data.batch_size=1", "--set", "optim.grad_accum=2", "--set", "logging.watch_interval=5"});
  const int64_t accumulated = train(args);
  const std::vector<Point> a = series(big, "train/loss"), b = series(accumulated, "train/loss");
  ASSERT_EQ(a.size(), 5u);
  ASSERT_EQ(b.size(), 5u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i].value, b[i].value, 1e-5 * a[i].value) << "step " << a[i].step;
  EXPECT_EQ(series(big, "train/tokens_seen").back().value, series(accumulated, "train/tokens_seen").back().value);

  // watch: a histogram of every parameter and of its gradient at step 5.
  tracker::Query q(db_);
  auto count = [&](const char* pattern) {
    tracker::Stmt s(q.db(), "SELECT count(*) FROM histograms h JOIN metric_keys k ON k.id = h.key_id "
                            "WHERE h.run_id = ? AND h.step = 5 AND k.name LIKE ?");
    s.bind(1, accumulated).bind(2, std::string(pattern));
    s.step();
    return s.int64(0);
  };
  EXPECT_GE(count("parameters/%"), 20);
  EXPECT_EQ(count("parameters/%"), count("gradients/%"));
}

TEST_F(Training, SigtermCheckpointsAndMarksTheRunStopped) {
  const std::string err_path = dir_ + "/stderr.txt", out_path = dir_ + "/stdout.txt";
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd = i3lab_command({"train", config_, "--db", db_, "--set", "train.max_iters=1000000", "--set",
                                           "optim.lr_decay_iters=1000000"}) +
                            " >" + out_path + " 2>" + err_path;
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (file_contents(err_path).find("step 3/") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << file_contents(err_path);
  EXPECT_EQ(WEXITSTATUS(status), 0) << file_contents(err_path);

  const int64_t run = std::stoll(file_contents(out_path));
  const tracker::RunRecord record = tracker::Query(db_).run(run);
  EXPECT_EQ(record.status, "stopped");
  const int64_t last_step = record.summary["train/loss"]["last_step"];
  EXPECT_GE(last_step, 3);
  const tracker::ArtifactVersion latest = tracker::Query(db_).artifact(checkpoint_name(run) + ":latest");
  EXPECT_EQ(latest.metadata["step"], last_step);  // the checkpoint holds the last step taken

  // It carries on from there, with its stored config.
  const I3labResult resumed = i3lab({"train", "--resume", std::to_string(run), "--db", db_, "--set",
                                     "train.max_iters=" + std::to_string(last_step + 2)});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_EQ(tracker::Query(db_).run(run).status, "finished");
  EXPECT_EQ(series(run, "train/loss").size(), static_cast<size_t>(last_step + 2));
}

TEST_F(Training, NonFiniteLossStopsOrSkips) {
  // A learning rate of 1e38 overflows the weights after one update.
  const std::vector<std::string> diverge = {"--set", "optim.lr=1e38", "--set", "optim.warmup_iters=0", "--set",
                                            "train.max_iters=40", "--set", "logging.eval_interval=0"};
  std::vector<std::string> args = {"train", config_, "--db", db_};
  args.insert(args.end(), diverge.begin(), diverge.end());
  const I3labResult stop = i3lab(args);
  EXPECT_EQ(stop.status, 1);
  EXPECT_NE(stop.err.find("non-finite loss or gradient norm by step 2"), std::string::npos) << stop.err;
  EXPECT_NE(stop.err.find("train.on_nonfinite"), std::string::npos);
  const int64_t stopped = std::stoll(stop.out);
  EXPECT_EQ(tracker::Query(db_).run(stopped).status, "failed");
  EXPECT_TRUE(tracker::Query(db_).artifacts().empty());  // no checkpoint of a broken model
  EXPECT_EQ(series(stopped, "train/loss").size(), 1u);  // step 1 only

  args.insert(args.end(), {"--set", "train.on_nonfinite=skip"});
  const I3labResult skip = i3lab(args);
  EXPECT_EQ(skip.status, 1);
  EXPECT_NE(skip.err.find("update skipped"), std::string::npos);
  EXPECT_NE(skip.err.find("21 updates in a row skipped"), std::string::npos) << skip.err;
  const std::vector<Point> skipped = series(std::stoll(skip.out), "train/skipped_steps");
  ASSERT_FALSE(skipped.empty());
  EXPECT_EQ(skipped.back().value, skipped.back().step - 1);
}

// Was: SIGTERM was honoured only after the step, and sampling 100,000,000 tokens at step 0 ran
// for many minutes, leaving the run "running" with no checkpoint.
TEST_F(Training, SigtermStopsLongSamplingInsideAStep) {
  const std::string err_path = dir_ + "/stderr.txt", out_path = dir_ + "/stdout.txt";
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd =
        i3lab_command({"train", config_, "--db", db_, "--set", "logging.sample_tokens=100000000"}) + " >" + out_path +
        " 2>" + err_path;
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (file_contents(err_path).find("data: ") == std::string::npos && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::seconds(2));  // into the samples of step 0
  ASSERT_EQ(kill(pid, SIGTERM), 0);
  int status = 0;
  deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      FAIL() << "still sampling 60 s after SIGTERM:\n" << file_contents(err_path);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(WIFEXITED(status)) << file_contents(err_path);
  EXPECT_EQ(WEXITSTATUS(status), 0) << file_contents(err_path);
  const int64_t run = std::stoll(file_contents(out_path));
  EXPECT_EQ(tracker::Query(db_).run(run).status, "stopped");
  EXPECT_EQ(tracker::Query(db_).artifact(checkpoint_name(run) + ":latest").metadata["step"], 0);
}

// Was: the first train/loss after a resume averaged only the steps since the resume (5.84
// where the uninterrupted run logged 5.73).
TEST_F(Training, ResumeMidIntervalLogsTheSameIntervalMeans) {
  const int64_t straight = train({"--set", "logging.log_interval=5"});
  const int64_t split =
      train({"--set", "logging.log_interval=5", "--set", "train.max_iters=9", "--set", "checkpoint.interval=7"});
  const I3labResult resumed =
      i3lab({"train", "--resume", std::to_string(split), "--from", "v0", "--db", db_, "--set", "train.max_iters=20"});
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  std::vector<int64_t> steps;
  for (const Point& p : series(split, "train/loss")) steps.push_back(p.step);
  EXPECT_EQ(steps, (std::vector<int64_t>{1, 5, 10, 15, 20}));
  expect_same_history(straight, split, {"train/loss"});
}

// Was: resuming with an 8-id vocabulary trained on a 3,160-id model without a word.
TEST_F(Training, ResumeWithAnotherVocabularyIsRefused) {
  const int64_t run = train({"--set", "train.max_iters=3"});
  write_file(dir_ + "/other.txt", "a b c");
  ASSERT_EQ(i3lab({"tokenizer", "build", "--out", dir_ + "/other.json", dir_ + "/other.txt"}).status, 0);
  const I3labResult r = i3lab({"train", "--resume", std::to_string(run), "--db", db_, "--set",
                               "data.vocab=" + dir_ + "/other.json", "--set", "train.max_iters=6"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("resume with the vocabulary it was trained with"), std::string::npos) << r.err;
  EXPECT_EQ(series(run, "train/loss").size(), 3u);
}

TEST_F(Training, EvalMatchesTheRunsValidationAndIsTracked) {
  const int64_t run = train({});
  const double trained_val = series(run, "val/loss").back().value;
  // The same held-out documents and windows as the run's validation (4 windows: 2 batches of 2).
  const I3labResult e = i3lab({"eval", "--model", "artifact:" + checkpoint_name(run) + ":best", "--data", corpus_,
                               "--separator", "\n", "--split", "val", "--val-fraction", "0.2", "--max-windows", "4",
                               "--cache-dir", dir_ + "/cache", "--db", db_, "--json"});
  ASSERT_EQ(e.status, 0) << e.err;
  const json result = json::parse(e.out);
  EXPECT_NEAR(result["loss"].get<double>(), trained_val, 1e-5);
  EXPECT_EQ(result["tokens"], 4 * 64);

  // The evaluation is a run of its own, linked to the checkpoint it used.
  const int64_t eval_run = result["run_id"];
  const tracker::RunRecord record = tracker::Query(db_).run(eval_run);
  EXPECT_EQ(record.tags, json({"eval"}));
  EXPECT_EQ(record.summary["val/loss"]["last_step"], 20);
  EXPECT_EQ(tracker::Query(db_).table(eval_run, "samples", 20)["rows"].size(), 3u);
  const tracker::ArtifactVersion best = tracker::Query(db_).artifact(checkpoint_name(run) + ":best");
  EXPECT_EQ(best.used_by, std::vector<std::string>{record.uid});

  // An untrained model folder on the whole file scores worse.
  ASSERT_EQ(i3lab({"model", "init", "--preset", "i3-tiny", "--vocab", dir_ + "/vocab.json", "--out", dir_ + "/init"}).status, 0);
  const I3labResult untrained =
      i3lab({"eval", "--model", dir_ + "/init", "--data", corpus_, "--cache-dir", dir_ + "/cache", "--json"});
  ASSERT_EQ(untrained.status, 0) << untrained.err;
  EXPECT_GT(json::parse(untrained.out)["loss"].get<double>(), trained_val + 0.5);

  // Without --cache-dir the token cache lives in a temporary folder, not ./data/cache.
  const fs::path cwd = fs::current_path();
  fs::current_path(dir_);
  const I3labResult uncached = i3lab({"eval", "--model", dir_ + "/init", "--data", corpus_, "--json"});
  fs::current_path(cwd);
  ASSERT_EQ(uncached.status, 0) << uncached.err;
  EXPECT_EQ(json::parse(uncached.out)["loss"], json::parse(untrained.out)["loss"]);
  EXPECT_FALSE(fs::exists(dir_ + "/data"));
  // Options out of range are usage errors; --batch 0 once spun at 100 % CPU.
  const I3labResult zero = i3lab({"eval", "--model", dir_ + "/init", "--data", corpus_, "--batch", "0"});
  EXPECT_EQ(zero.status, 2);
  EXPECT_NE(zero.err.find("--batch"), std::string::npos) << zero.err;
}

// A checkpoint that is there but damaged is reported as damaged, not as missing.
TEST_F(Training, ADamagedCheckpointIsNotReportedAsAMissingOne) {
  const int64_t run = train({"--set", "train.max_iters=3"});
  const std::string name = checkpoint_name(run);
  // v1: v0 with an optimizer state of the wrong shape.
  const std::string copy = dir_ + "/ckpt";
  tracker::Query(db_).fetch_artifact(tracker::Query(db_).artifact(name + ":v0"), copy);
  safetensors::save(copy + "/optimizer.safetensors",
                    {{"step", torch::tensor(3)}, {"exp_avg.0", torch::zeros({7})}, {"exp_avg_sq.0", torch::zeros({7})}});
  {
    tracker::Store store(db_);
    tracker::Run::create(store, {"test"}).log_artifact(name, "checkpoint", copy);
  }
  const I3labResult damaged = i3lab({"train", "--resume", std::to_string(run), "--from", "v1", "--db", db_});
  EXPECT_EQ(damaged.status, 1);
  EXPECT_NE(damaged.err.find("checkpoint " + name + ":v1: optimizer state exp_avg.0 has the wrong shape"), std::string::npos)
      << damaged.err;
  EXPECT_EQ(damaged.err.find("has no checkpoint"), std::string::npos) << damaged.err;
  const I3labResult missing = i3lab({"train", "--resume", std::to_string(run), "--from", "v7", "--db", db_});
  EXPECT_EQ(missing.status, 1);
  EXPECT_NE(missing.err.find("run " + std::to_string(run) + " has no checkpoint " + name + ":v7 to resume from"),
            std::string::npos)
      << missing.err;
}

TEST_F(Training, BadConfigIsAClearErrorAndCreatesNoRun) {
  write_file(dir_ + "/bad.json", R"({"optim": {"lr": "fast"}})");
  const I3labResult bad = i3lab({"train", dir_ + "/bad.json", "--db", db_});
  EXPECT_EQ(bad.status, 1);
  EXPECT_EQ(bad.err, "i3lab train: error: " + dir_ + "/bad.json: \"optim.lr\" must be a number, got \"fast\"\n");
  const I3labResult missing_vocab = i3lab({"train", config_, "--db", db_, "--set", "data.vocab=" + dir_ + "/none.json"});
  EXPECT_EQ(missing_vocab.status, 1);
  EXPECT_NE(missing_vocab.err.find("none.json"), std::string::npos) << missing_vocab.err;
  write_file(dir_ + "/truncated.json", "{\"optim\": {\"lr\": 1e-3,\n");
  const I3labResult truncated = i3lab({"train", dir_ + "/truncated.json", "--db", db_});
  EXPECT_EQ(truncated.status, 1);
  EXPECT_NE(truncated.err.find("truncated.json: not valid JSON (parse error at line 2"), std::string::npos) << truncated.err;
  const I3labResult no_files = i3lab({"train", config_, "--db", db_, "--set", "data.cache_dir=" + dir_ + "/new-cache",
                                      "--set", "data.sources=[{\"path\": \"" + dir_ + "/none/*.txt\"}]"});
  EXPECT_EQ(no_files.status, 1);
  EXPECT_NE(no_files.err.find(dir_ + "/none/*.txt: no files match"), std::string::npos) << no_files.err;
  const I3labResult no_checkpoint = i3lab({"train", "--resume", "7", "--db", db_});
  EXPECT_EQ(no_checkpoint.status, 1);
  EXPECT_FALSE(fs::exists(db_));  // nothing was created
  EXPECT_FALSE(fs::exists(dir_ + "/new-cache"));
}

}  // namespace
