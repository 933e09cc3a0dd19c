// The coordinator and its workers as real processes on 127.0.0.1: jobs run exactly once —
// counted by the jobs' own side effects, a line each attempt appends to a file — through
// worker and coordinator deaths, cancellation, timeouts and retries.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "tests/cluster.h"

namespace fs = std::filesystem;

namespace {

using nlohmann::json;

// A command job that appends "ID ATTEMPT" to `side` when it starts, sleeps, and appends "done ID".
json side_effect_job(const std::string& side, double sleep_s) {
  return {{"kind", "command"},
          {"argv", {"sh", "-c", "echo \"$I3LAB_JOB_ID $I3LAB_ATTEMPT\" >> '" + side + "'; sleep " + std::to_string(sleep_s) +
                                    "; echo \"done $I3LAB_JOB_ID\" >> '" + side + "'"}}};
}

bool all_final(const json& list, size_t n) {
  if (!list.is_array() || list.size() != n) return false;
  for (const auto& j : list)
    if (j["status"] != "succeeded" && j["status"] != "failed" && j["status"] != "cancelled") return false;
  return true;
}

TEST(Cluster, TwentyJobsThroughTwoWorkersRunExactlyOnce) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  Coordinator c = start_coordinator(dir);
  auto w1 = start_worker(dir, c.endpoint, "w1");
  auto w2 = start_worker(dir, c.endpoint, "w2");
  // Both registered before the jobs arrive: on a loaded machine one worker could otherwise
  // take all twenty before the other says HELLO.
  ASSERT_TRUE(eventually([&] {
    const I3labResult r = i3lab({"workers", "--coordinator", c.endpoint, "--json"});
    return r.status == 0 && json::parse(r.out, nullptr, false).size() == 2;
  }));
  std::vector<int64_t> ids;
  for (int i = 0; i < 20; ++i) ids.push_back(submit(dir, c.endpoint, side_effect_job(side, 0.05)));
  json list;
  ASSERT_TRUE(eventually([&] { return all_final(list = jobs_json(c.endpoint), 20); })) << list.dump(1);

  std::set<std::string> workers;
  for (const auto& j : list) {
    EXPECT_EQ(j["status"], "succeeded") << j.dump();
    EXPECT_EQ(j["attempts"], 1) << j.dump();
    workers.insert(j["worker"].get<std::string>());
  }
  EXPECT_EQ(workers, (std::set<std::string>{"w1", "w2"}));
  // The jobs' own record: each started once (attempt 1) and finished once.
  std::multiset<std::string> lines;
  for (const std::string& l : file_lines(side)) lines.insert(l);
  EXPECT_EQ(lines.size(), 40u);
  for (int64_t id : ids) {
    EXPECT_EQ(lines.count(std::to_string(id) + " 1"), 1u) << id;
    EXPECT_EQ(lines.count("done " + std::to_string(id)), 1u) << id;
  }
  // Each attempt's output is in its worker's job folder and in `i3lab logs`.
  const I3labResult logs = i3lab({"logs", std::to_string(ids[0]), "--coordinator", c.endpoint});
  EXPECT_EQ(logs.status, 0) << logs.err;
}

TEST(Cluster, KilledWorkersJobIsRequeuedAndRunsOnTheOther) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  Coordinator c = start_coordinator(dir);
  auto w1 = start_worker(dir, c.endpoint, "w1");
  const int64_t id = submit(dir, c.endpoint, side_effect_job(side, 4));
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[id]["status"] == "running"; }));
  auto w2 = start_worker(dir, c.endpoint, "w2");
  ASSERT_TRUE(eventually([&] { return file_lines(side).size() == 1; }));
  const auto killed = std::chrono::steady_clock::now();
  w1->signal(SIGKILL);
  w1->wait();
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[id]["attempts"] == 2; }, std::chrono::seconds(15)));
  const double requeue_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  std::cout << "[ measured ] worker SIGKILL to the job's second attempt: " << requeue_s << " s\n";
  EXPECT_LT(requeue_s, 10.0);  // liveness is 5 s; this only guards against "never"
  json job;
  ASSERT_TRUE(eventually([&] { return (job = jobs_by_id(jobs_json(c.endpoint))[id])["status"] == "succeeded"; }));
  EXPECT_EQ(job["worker"], "w2");
  EXPECT_EQ(job["restarts"], 1);
  // The first attempt died with its worker (it never finished); the second ran once.
  EXPECT_EQ(file_lines(side), (std::vector<std::string>{std::to_string(id) + " 1", std::to_string(id) + " 2",
                                                        "done " + std::to_string(id)}));
  EXPECT_NE(c.proc->stderr_text().find("worker w1 lost"), std::string::npos);
}

TEST(Cluster, KilledCoordinatorRestartsAndEveryJobRunsExactlyOnce) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  Coordinator c = start_coordinator(dir);
  const std::string endpoint = c.endpoint;
  auto w1 = start_worker(dir, endpoint, "w1", {"--slots", "1"});
  auto w2 = start_worker(dir, endpoint, "w2", {"--slots", "1"});
  std::vector<int64_t> ids;
  for (int i = 0; i < 12; ++i) ids.push_back(submit(dir, endpoint, side_effect_job(side, 0.4)));
  ASSERT_TRUE(eventually([&] {
    int done = 0;
    for (const auto& l : file_lines(side)) done += l.rfind("done", 0) == 0;
    return done >= 3;
  }));
  c.proc->signal(SIGKILL);
  c.proc->wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the workers run on meanwhile
  Coordinator again = start_coordinator(dir, endpoint);
  json list;
  ASSERT_TRUE(eventually([&] { return all_final(list = jobs_json(endpoint), 12); }, std::chrono::seconds(60))) << list.dump(1);
  for (const auto& j : list) EXPECT_EQ(j["status"], "succeeded") << j.dump();
  std::multiset<std::string> lines;
  for (const std::string& l : file_lines(side)) lines.insert(l);
  EXPECT_EQ(lines.size(), 24u);
  for (int64_t id : ids) {
    // Started once (an attempt whose ASSIGN died with the coordinator is re-numbered, not re-run)…
    size_t starts = 0;
    for (const std::string& l : lines) starts += l.rfind(std::to_string(id) + " ", 0) == 0;
    EXPECT_EQ(starts, 1u) << id;
    EXPECT_EQ(lines.count("done " + std::to_string(id)), 1u) << id;  // …and finished once
  }
  EXPECT_NE(again.proc->stderr_text().find("recovered"), std::string::npos);
}

TEST(Cluster, WorkerStartedFirstJoinsWhenTheCoordinatorAppears) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  // Find a free port by letting a coordinator pick one, then stop it.
  std::string endpoint;
  {
    std::filesystem::create_directories(dir + "/probe");
    Coordinator probe = start_coordinator(dir + "/probe", "tcp://127.0.0.1:*");
    endpoint = probe.endpoint;
  }
  auto w1 = start_worker(dir, endpoint, "w1");
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Coordinator c = start_coordinator(dir, endpoint);
  const int64_t id = submit(dir, endpoint, side_effect_job(side, 0));
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(endpoint))[id]["status"] == "succeeded"; }, std::chrono::seconds(20)));
}

TEST(Cluster, CancelStopsTheJobAndSigkillFollowsAnIgnoredSigterm) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  Coordinator c = start_coordinator(dir);
  auto w1 = start_worker(dir, c.endpoint, "w1");
  json polite = side_effect_job(side, 60);
  const int64_t a = submit(dir, c.endpoint, polite);
  json stubborn = {{"kind", "command"},
                   {"argv", {"sh", "-c", "trap '' TERM; echo \"stubborn\" >> '" + side + "'; sleep 60 & wait; sleep 60"}},
                   {"cancel_grace_s", 1}};
  const int64_t b = submit(dir, c.endpoint, stubborn);
  ASSERT_TRUE(eventually([&] { return file_lines(side).size() == 2; }));
  for (int64_t id : {a, b}) {
    const I3labResult r = i3lab({"cancel", std::to_string(id), "--coordinator", c.endpoint});
    EXPECT_EQ(r.status, 0) << r.err;
  }
  json jobs;
  ASSERT_TRUE(eventually([&] {
    jobs = jobs_json(c.endpoint);
    auto by = jobs_by_id(jobs);
    return by[a]["status"] == "cancelled" && by[b]["status"] == "cancelled";
  }, std::chrono::seconds(15))) << jobs.dump(1);
  EXPECT_EQ(jobs_by_id(jobs)[b]["signal"], SIGKILL);
  // Cancelling a queued job ends it at once; an unknown one is an error.
  const I3labResult unknown = i3lab({"cancel", "999", "--coordinator", c.endpoint});
  EXPECT_EQ(unknown.status, 1);
  EXPECT_NE(unknown.err.find("no job 999"), std::string::npos) << unknown.err;
}

TEST(Cluster, TimeoutsFailAndRetriesBackOffThenSucceed) {
  const std::string dir = cluster_dir();
  Coordinator c = start_coordinator(dir);
  auto w1 = start_worker(dir, c.endpoint, "w1");
  const int64_t slow = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"sleep", "30"}}, {"timeout_s", 1}, {"cancel_grace_s", 1}});
  // Fails on its first two attempts, succeeds on the third.
  const int64_t flaky = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"sh", "-c", "test \"$I3LAB_ATTEMPT\" -ge 3"}}});
  const int64_t hopeless = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"false"}}, {"max_restarts", 1}});
  json jobs;
  ASSERT_TRUE(eventually([&] { return all_final(jobs = jobs_json(c.endpoint), 3); }, std::chrono::seconds(30))) << jobs.dump(1);
  auto by = jobs_by_id(jobs);
  EXPECT_EQ(by[slow]["status"], "failed");
  EXPECT_NE(by[slow]["error"].get<std::string>().find("timed out after 1"), std::string::npos) << by[slow];
  EXPECT_EQ(by[flaky]["status"], "succeeded");
  EXPECT_EQ(by[flaky]["attempts"], 3);
  EXPECT_EQ(by[hopeless]["status"], "failed");
  EXPECT_EQ(by[hopeless]["attempts"], 2);
  EXPECT_NE(by[hopeless]["error"].get<std::string>().find("gave up after 1 restarts"), std::string::npos) << by[hopeless];
}

TEST(Cluster, JobsArePlacedWhereTheirResourcesFit) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  Coordinator c = start_coordinator(dir);
  auto cpu = start_worker(dir, c.endpoint, "cpu", {"--gpus", "none", "--slots", "4"});
  const std::string record = "echo \"$I3LAB_JOB_ID rank=${RANK:-} world=${WORLD_SIZE:-} gpus=$CUDA_VISIBLE_DEVICES\" >> '" + side + "'";
  const int64_t gpu_job = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"sh", "-c", record}}, {"resources", {{"gpus", 1}}}});
  const int64_t labelled = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"sh", "-c", record}},
                                                    {"resources", {{"labels", {{"zone", "b"}}}}}});
  const int64_t gang = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"sh", "-c", record}}, {"distributed", {{"ranks", 2}}},
                                                {"resources", {{"cpu_slots", 2}}}});
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[gang]["status"] == "succeeded"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  auto by = jobs_by_id(jobs_json(c.endpoint));
  EXPECT_EQ(by[gpu_job]["status"], "queued");  // no GPU anywhere yet
  EXPECT_EQ(by[labelled]["status"], "queued");
  auto gpus = start_worker(dir, c.endpoint, "gpus", {"--gpus", "0,1", "--labels", "zone=b"});
  ASSERT_TRUE(eventually([&] {
    auto b = jobs_by_id(jobs_json(c.endpoint));
    return b[gpu_job]["status"] == "succeeded" && b[labelled]["status"] == "succeeded";
  }));
  by = jobs_by_id(jobs_json(c.endpoint));
  EXPECT_EQ(by[gpu_job]["worker"], "gpus");
  EXPECT_EQ(by[labelled]["worker"], "gpus");
  std::multiset<std::string> lines;
  for (const auto& l : file_lines(side)) lines.insert(l);
  EXPECT_EQ(lines.count(std::to_string(gang) + " rank=0 world=2 gpus="), 1u);
  EXPECT_EQ(lines.count(std::to_string(gang) + " rank=1 world=2 gpus="), 1u);
  EXPECT_EQ(lines.count(std::to_string(gpu_job) + " rank=0 world=1 gpus=0"), 1u);  // 0 of 1 alone
  EXPECT_EQ(lines.count(std::to_string(labelled) + " rank=0 world=1 gpus="), 1u);
}

TEST(Cluster, EachRankOfAGangKeepsItsOwnConsole) {
  const std::string dir = cluster_dir();
  Coordinator c = start_coordinator(dir);
  auto w1 = start_worker(dir, c.endpoint, "w1", {"--slots", "2"});
  const int64_t id = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"sh", "-c", "for i in 1 2 3; do echo rank $RANK line $i; done"}},
                                              {"distributed", {{"ranks", 2}}}});
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[id]["status"] == "succeeded"; }));
  for (const std::string rank : {"0", "1"}) {
    I3labResult r;
    ASSERT_TRUE(eventually([&] {
      r = i3lab({"logs", std::to_string(id), "--rank", rank, "--coordinator", c.endpoint});
      return std::count(r.out.begin(), r.out.end(), '\n') >= 3;
    })) << r.out << r.err;
    EXPECT_EQ(r.out, "rank " + rank + " line 1\nrank " + rank + " line 2\nrank " + rank + " line 3\n");
  }
}

TEST(Cluster, OutputThatIsNotUtf8ReachesTheLogWithoutHarm) {
  const std::string dir = cluster_dir();
  Coordinator c = start_coordinator(dir);
  auto w1 = start_worker(dir, c.endpoint, "w1");
  const int64_t id = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"printf", "a\\377b\\n"}}});
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[id]["status"] == "succeeded"; }));
  I3labResult r;
  ASSERT_TRUE(eventually([&] { return !(r = i3lab({"logs", std::to_string(id), "--coordinator", c.endpoint})).out.empty(); }));
  EXPECT_EQ(r.out, "a\xef\xbf\xbd" "b\n");  // the byte 0xff as U+FFFD
  EXPECT_TRUE(w1->alive()) << w1->stderr_text();
}

TEST(Cluster, BadSubmissionsAreRefusedNamingTheField) {
  const std::string dir = cluster_dir();
  Coordinator c = start_coordinator(dir);
  std::ofstream(dir + "/bad.json") << R"({"kind": "command", "argv": ["true"], "resources": {"gpu": 1}})";
  I3labResult r = i3lab({"submit", dir + "/bad.json", "--coordinator", c.endpoint});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("bad.json: resources.gpu is not a resource"), std::string::npos) << r.err;
  std::ofstream(dir + "/train.json") << R"({"optim": {"lr": 1e-3, "lrr": 2}})";
  r = i3lab({"submit", dir + "/train.json", "--coordinator", c.endpoint});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("optim.lrr"), std::string::npos) << r.err;
  EXPECT_EQ(jobs_json(c.endpoint), json::array());  // nothing was queued
  // No coordinator there: a clear error, not a hang.
  r = i3lab({"jobs", "--coordinator", "tcp://127.0.0.1:1"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("no answer from a coordinator at tcp://127.0.0.1:1"), std::string::npos) << r.err;
}

TEST(Cluster, ListeningBeyondLoopbackNeedsInsecure) {
  const std::string dir = cluster_dir();
  const I3labResult r = i3lab({"coordinator", "--db", dir + "/i3lab.db", "--listen", "tcp://0.0.0.0:*"});
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("refusing to listen on tcp://0.0.0.0:*"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--insecure"), std::string::npos) << r.err;
}

// CURVE keys: only workers and clients on the allow-list get in; with keys the coordinator may
// listen beyond loopback.
TEST(Cluster, CurveKeysLetInOnlyTheAllowList) {
  const std::string dir = cluster_dir();
  std::map<std::string, std::string> public_key;
  for (const char* name : {"coordinator", "worker", "client", "stranger"}) {
    const I3labResult r = i3lab({"keygen", dir + "/" + name});
    ASSERT_EQ(r.status, 0) << r.err;
    public_key[name] = r.out.substr(0, 40);
    EXPECT_EQ(fs::status(dir + "/" + name + ".key").permissions() & fs::perms::group_read, fs::perms::none);
  }
  EXPECT_EQ(i3lab({"keygen", dir + "/worker"}).status, 1);  // never overwritten
  std::ofstream(dir + "/allow.txt") << "# who may connect\n" << public_key["worker"] << " worker\n\n" << public_key["client"] << "\n";
  const std::vector<std::string> server = {"--key", dir + "/coordinator.key", "--allow", dir + "/allow.txt"};
  EXPECT_EQ(i3lab({"coordinator", "--db", dir + "/x.db", "--key", dir + "/coordinator.key"}).status, 2);  // no --allow

  Coordinator c = start_coordinator(dir, "tcp://127.0.0.1:*", server);
  auto worker = start_worker(dir, c.endpoint, "worker", {"--key", dir + "/worker.key", "--coordinator-key", dir + "/coordinator.key"});
  auto stranger = start_worker(dir, c.endpoint, "stranger", {"--key", dir + "/stranger.key", "--coordinator-key", public_key["coordinator"]});
  auto keyless = start_worker(dir, c.endpoint, "keyless");
  // This process's commands (and only they: the workers started above) use the client's keys.
  setenv("I3LAB_KEY", (dir + "/client.key").c_str(), 1);
  setenv("I3LAB_COORDINATOR_KEY", public_key["coordinator"].c_str(), 1);
  struct Unset {
    ~Unset() {
      unsetenv("I3LAB_KEY");
      unsetenv("I3LAB_COORDINATOR_KEY");
    }
  } unset;
  ASSERT_TRUE(eventually([&] { return i3lab({"workers", "--coordinator", c.endpoint}).out.find("worker") != std::string::npos; }))
      << worker->stderr_text() << c.proc->stderr_text();
  const int64_t id = submit(dir, c.endpoint, {{"kind", "command"}, {"argv", {"true"}}});
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[id].value("status", "") == "succeeded"; }));
  EXPECT_EQ(jobs_by_id(jobs_json(c.endpoint))[id]["worker"], "worker");
  EXPECT_TRUE(eventually([&] { return c.proc->stderr_text().find("refused key " + public_key["stranger"]) != std::string::npos; }))
      << c.proc->stderr_text();
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the keyless worker has tried too, by now several times
  const std::string workers = i3lab({"workers", "--coordinator", c.endpoint}).out;
  EXPECT_EQ(workers.find("stranger"), std::string::npos) << workers;
  EXPECT_EQ(workers.find("keyless"), std::string::npos) << workers;
  // A bad allow-list line is named.
  std::ofstream(dir + "/bad.txt") << public_key["worker"] << "\nnot-a-key\n";
  const I3labResult bad = i3lab({"coordinator", "--db", dir + "/x.db", "--key", dir + "/coordinator.key", "--allow", dir + "/bad.txt"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("bad.txt:2: not a public key"), std::string::npos) << bad.err;
  // With keys, listening beyond loopback needs no --insecure.
  fs::create_directories(dir + "/wide");
  Coordinator wide = start_coordinator(dir + "/wide", "tcp://0.0.0.0:*", server);
  EXPECT_NE(wide.endpoint.find("tcp://0.0.0.0:"), std::string::npos);
}

}  // namespace

namespace {

TEST(Up, RunsTheJobOnLocalWorkersAndExitsWithItsOutcome) {
  const std::string dir = cluster_dir(), side = dir + "/side.txt";
  std::ofstream(dir + "/ok.json") << json{{"kind", "command"}, {"argv", {"sh", "-c", "echo \"$I3LAB_JOB_ID\" >> '" + side + "'"}}}.dump();
  I3labResult r = i3lab({"up", dir + "/ok.json", "--workers", "2", "--exit-when-done", "--listen", "tcp://127.0.0.1:*",
                         "--db", dir + "/i3lab.db", "--dir", dir + "/local"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("1/1 done (1 succeeded, 0 failed)"), std::string::npos) << r.err;
  EXPECT_EQ(file_lines(side), std::vector<std::string>{"1"});
  std::ofstream(dir + "/bad.json") << json{{"kind", "command"}, {"argv", {"false"}}, {"max_restarts", 0}}.dump();
  r = i3lab({"up", dir + "/bad.json", "--workers", "1", "--exit-when-done", "--listen", "tcp://127.0.0.1:*", "--db",
             dir + "/i3lab2.db", "--dir", dir + "/local2"});
  EXPECT_EQ(r.status, 1) << r.err;
  EXPECT_NE(r.err.find("some failed"), std::string::npos) << r.err;
}

TEST(BenchScheduler, EveryJobSucceedsAndTheReportHasItsFields) {
  const I3labResult r = i3lab({"bench", "scheduler", "--jobs", "50", "--workers", "2", "--json"});
  ASSERT_EQ(r.status, 0) << r.err;
  const json report = json::parse(r.out);
  EXPECT_EQ(report["succeeded"], 50);
  EXPECT_GT(report["jobs_per_sec"].get<double>(), 0);
  EXPECT_GT(report["p99_assign_ms"].get<double>(), 0);
  EXPECT_GE(report["p99_assign_ms"].get<double>(), report["p50_assign_ms"].get<double>());
}

}  // namespace
