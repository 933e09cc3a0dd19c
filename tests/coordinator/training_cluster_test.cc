// Training jobs through a real coordinator and real workers: the run a job writes on its
// worker reaches the coordinator's database exactly (metrics, console, checkpoints), also when
// the coordinator is away for a while, and a job whose worker dies resumes on another worker,
// with its own work folder, from the newest checkpoint, its loss curve one line.
#include <gtest/gtest.h>

#include <filesystem>
#include <set>

#include "tests/cluster.h"
#include "tracker/query/query.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

class TrainingCluster : public ::testing::Test {
 protected:
  void SetUp() override {
    setenv("I3LAB_THREADS", "1,1", 1);  // inherited by the coordinator, workers and jobs
    dir_ = cluster_dir();
    base_ = tiny_training(dir_, 1);
  }

  // A tiny model's training config: `steps` updates, a checkpoint every `every` (~15 ms a step).
  json config(int steps, int every, int keep_last = 0) const {
    json c = base_;
    c["project"] = "cluster";
    c["optim"]["lr_decay_iters"] = steps;
    c["train"]["max_iters"] = steps;
    c["logging"]["sample_tokens"] = 5;
    c["checkpoint"] = {{"interval", every}, {"keep_last", keep_last}};
    return c;
  }

  int64_t submit_training(const std::string& endpoint, const json& cfg) {
    return submit(dir_, endpoint, {{"kind", "train"}, {"config", cfg}, {"max_restarts", 2}});
  }

  json job(const std::string& endpoint, int64_t id) {
    const json list = jobs_json(endpoint);
    return jobs_by_id(list).count(id) ? jobs_by_id(list)[id] : json();
  }

  // The uid of job `id`'s run once the coordinator holds one of its checkpoints (every `every`
  // steps) and steps past it; "" if that takes over 90 s.
  std::string run_past_checkpoint(const std::string& endpoint, int64_t id, int every) {
    const std::string central = dir_ + "/i3lab.db";
    std::string uid;
    const bool reached = eventually(
        [&] {
          uid = job(endpoint, id).value("run", "");
          const int64_t run = run_id(central, uid);
          if (run == 0) return false;
          const std::vector<int64_t> s = steps(central, run, "train/loss");
          return !tracker::Query(central).artifacts("ckpt-" + uid.substr(0, 8)).empty() && !s.empty() && s.back() > every + 5;
        },
        std::chrono::seconds(90));
    return reached ? uid : "";
  }

  // The job's run in database `db` (0 while it has none).
  static int64_t run_id(const std::string& db, const std::string& uid) {
    if (uid.empty() || !fs::exists(db)) return 0;
    for (const tracker::RunRecord& r : tracker::Query(db).runs())
      if (r.uid == uid) return r.id;
    return 0;
  }

  static std::vector<int64_t> steps(const std::string& db, int64_t run, const std::string& key) {
    std::vector<int64_t> out;
    for (const tracker::Bucket& b : tracker::Query(db).points(run, key, 0, 1 << 30)) out.push_back(b.last_step);
    return out;
  }

  // Expects run `uid` to hold the same points of every key, console lines and checkpoint
  // versions in database `a` as in database `b`.
  static void expect_same_run(const std::string& a, const std::string& b, const std::string& uid) {
    const int64_t ra = run_id(a, uid), rb = run_id(b, uid);
    ASSERT_GT(ra, 0);
    ASSERT_GT(rb, 0);
    tracker::Query qa(a), qb(b);
    EXPECT_EQ(qa.run(ra).status, qb.run(rb).status);
    const std::vector<std::string> keys = qa.metric_keys(ra);
    EXPECT_EQ(keys, qb.metric_keys(rb));
    for (const std::string& key : keys) {
      const auto pa = qa.points(ra, key, -(int64_t{1} << 40), int64_t{1} << 40), pb = qb.points(rb, key, -(int64_t{1} << 40), int64_t{1} << 40);
      ASSERT_EQ(pa.size(), pb.size()) << key;
      for (size_t i = 0; i < pa.size(); ++i) {
        EXPECT_EQ(pa[i].last_step, pb[i].last_step) << key;
        if (!std::isnan(pa[i].last)) {
          EXPECT_EQ(pa[i].last, pb[i].last) << key << " at step " << pa[i].last_step;
        }
      }
    }
    EXPECT_EQ(qa.console(ra, -1, 1000000).size(), qb.console(rb, -1, 1000000).size());
    std::vector<std::pair<int64_t, std::string>> va, vb;
    for (const auto& v : qa.artifacts()) va.emplace_back(v.version, v.digest);
    for (const auto& v : qb.artifacts()) vb.emplace_back(v.version, v.digest);
    EXPECT_EQ(va, vb);
  }

  std::string dir_;
  json base_;
};

TEST_F(TrainingCluster, ARunReachesTheCoordinatorAsTheJobWroteIt) {
  Coordinator c = start_coordinator(dir_, "tcp://127.0.0.1:*", {"--artifacts", dir_ + "/artifact-store"});
  auto worker = start_worker(dir_, c.endpoint, "w1");
  const int64_t id = submit_training(c.endpoint, config(40, 10));
  ASSERT_TRUE(eventually([&] { return job(c.endpoint, id).value("status", "") == "succeeded"; }, std::chrono::seconds(90)))
      << job(c.endpoint, id).dump() << worker->stderr_text();
  const std::string uid = job(c.endpoint, id)["run"].get<std::string>();
  ASSERT_FALSE(uid.empty());
  const std::string central = dir_ + "/i3lab.db", local = dir_ + "/w1/job-" + std::to_string(id) + "/attempt-1.db";
  expect_same_run(central, local, uid);
  EXPECT_EQ(steps(central, run_id(central, uid), "train/loss").size(), 40u);
  // The checkpoints' files arrived whole: the newest one can be fetched and verified there.
  tracker::Query q(central);
  EXPECT_NO_THROW(q.fetch_artifact(q.artifact("ckpt-" + uid.substr(0, 8) + ":latest"), dir_ + "/fetched"));
  // They are in the folder --artifacts named (which the database's DB.artifacts links to).
  EXPECT_TRUE(fs::is_symlink(central + ".artifacts"));
  EXPECT_TRUE(fs::exists(dir_ + "/artifact-store/sha256/" + q.artifact("ckpt-" + uid.substr(0, 8) + ":latest").files.at(0).sha256.substr(0, 2)));
  // Started again with another folder, the coordinator refuses, naming where the files are.
  c.proc->signal(SIGTERM);
  c.proc->wait();
  const I3labResult other = i3lab({"coordinator", "--db", central, "--artifacts", dir_ + "/elsewhere", "--listen", "tcp://127.0.0.1:*"});
  EXPECT_EQ(other.status, 1);
  EXPECT_NE(other.err.find("/artifact-store (" + central + ".artifacts links there)"), std::string::npos) << other.err;
}

TEST_F(TrainingCluster, AJobWhoseWorkerDiesResumesOnAnotherFromItsCheckpoint) {
  Coordinator c = start_coordinator(dir_);
  auto first = start_worker(dir_, c.endpoint, "first");
  const int steps_total = 600, every = 50;
  const int64_t id = submit_training(c.endpoint, config(steps_total, every));
  const std::string central = dir_ + "/i3lab.db";
  // Wait until the coordinator holds a checkpoint and steps past it, then kill that worker.
  const std::string uid = run_past_checkpoint(c.endpoint, id, every);
  ASSERT_FALSE(uid.empty()) << first->stderr_text();
  auto second = start_worker(dir_, c.endpoint, "second");
  ASSERT_TRUE(eventually([&] { return I3labResult(i3lab({"workers", "--coordinator", c.endpoint})).out.find("second") != std::string::npos; }));
  first->signal(SIGKILL);
  first->wait();

  ASSERT_TRUE(eventually([&] { return job(c.endpoint, id).value("status", "") == "succeeded"; }, std::chrono::seconds(120)))
      << job(c.endpoint, id).dump() << second->stderr_text();
  const json done = job(c.endpoint, id);
  EXPECT_EQ(done["attempts"], 2);
  EXPECT_EQ(done["worker"], "second");
  EXPECT_EQ(done["run"], uid);  // one run, continued
  // The second attempt resumed (its own database holds only the steps after the checkpoint)…
  const std::string local = dir_ + "/second/job-" + std::to_string(id) + "/attempt-2.db";
  const std::vector<int64_t> resumed = steps(local, run_id(local, uid), "train/loss");
  ASSERT_FALSE(resumed.empty());
  EXPECT_GT(resumed.front(), every);
  EXPECT_EQ(resumed.front() % every, 1);
  // …and the coordinator's loss curve is one line: every step once, no gap.
  const std::vector<int64_t> curve = steps(central, run_id(central, uid), "train/loss");
  ASSERT_EQ(curve.size(), static_cast<size_t>(steps_total));
  for (int i = 0; i < steps_total; ++i) EXPECT_EQ(curve[i], i + 1);
  EXPECT_EQ(tracker::Query(central).run(run_id(central, uid)).status, "finished");
}

// The pid of the process whose command line contains `needle` (0 when none).
pid_t process_with(const std::string& needle) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string cmdline = file_contents(entry.path() / "cmdline");
    std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
    if (cmdline.find(needle) != std::string::npos && cmdline.find(" train ") != std::string::npos) return std::stoi(name);
  }
  return 0;
}

// A 2-rank training job (its config's distributed.ranks) across two workers: rank 1 killed
// mid-run makes rank 0 fail at once, the job runs again as a whole from its newest checkpoint,
// and its run is one line of every step once.
TEST_F(TrainingCluster, ATwoRankJobRestartsWholeFromItsCheckpointWhenOneRankIsKilled) {
  Coordinator c = start_coordinator(dir_);
  auto w1 = start_worker(dir_, c.endpoint, "w1", {"--slots", "1"});
  auto w2 = start_worker(dir_, c.endpoint, "w2", {"--slots", "1"});
  ASSERT_TRUE(eventually([&] { return I3labResult(i3lab({"workers", "--coordinator", c.endpoint})).out.find("w2") != std::string::npos; }));
  const int steps_total = 300, every = 50;
  json cfg = config(steps_total, every);
  cfg["distributed"] = {{"ranks", 2}, {"backend", "gloo"}, {"timeout_s", 30}};
  const int64_t id = submit_training(c.endpoint, cfg);
  const std::string central = dir_ + "/i3lab.db";
  const std::string uid = run_past_checkpoint(c.endpoint, id, every);
  ASSERT_FALSE(uid.empty()) << job(c.endpoint, id).dump() << w1->stderr_text() << w2->stderr_text();
  const pid_t rank1 = process_with("/job-" + std::to_string(id) + "/attempt-1.rank-1.db");
  ASSERT_GT(rank1, 0);
  kill(rank1, SIGKILL);

  ASSERT_TRUE(eventually([&] { return job(c.endpoint, id).value("status", "") == "succeeded"; }, std::chrono::seconds(120)))
      << job(c.endpoint, id).dump() << w1->stderr_text() << w2->stderr_text();
  const json done = job(c.endpoint, id);
  EXPECT_EQ(done["attempts"], 2);
  EXPECT_EQ(done["run"], uid);  // one run, continued
  // Both ranks ran again, one on each worker, and rank 0 said why the first attempt ended.
  // Only rank 0 fetched the checkpoint; rank 1 got its state from rank 0.
  std::string rank0_log, second_rank0, second_rank1;
  for (const char* w : {"w1", "w2"}) {
    const std::string folder = dir_ + "/" + w + "/job-" + std::to_string(id);
    if (fs::exists(folder + "/attempt-1.log")) rank0_log = file_contents(folder + "/attempt-1.log");
    if (fs::exists(folder + "/attempt-2.log")) second_rank0 = file_contents(folder + "/attempt-2.log");
    if (fs::exists(folder + "/attempt-2.rank-1.log")) second_rank1 = file_contents(folder + "/attempt-2.rank-1.log");
  }
  EXPECT_NE(second_rank0.find("resuming run"), std::string::npos) << second_rank0;
  const std::string formed = "rank 1 of 2: gloo process group formed; starting at step ";
  const size_t at = second_rank1.find(formed);
  ASSERT_NE(at, std::string::npos) << second_rank1;
  const int start = std::stoi(second_rank1.substr(at + formed.size()));
  EXPECT_TRUE(start > 0 && start % every == 0) << second_rank1;  // a checkpoint's step
  EXPECT_EQ(second_rank1.find("resuming run"), std::string::npos) << second_rank1;
  EXPECT_NE(rank0_log.find("another rank stopped, was killed or cannot be reached"), std::string::npos) << rank0_log;
  // The coordinator's curve is one line: every step once, no gap; rank 1 wrote no run.
  const std::vector<int64_t> curve = steps(central, run_id(central, uid), "train/loss");
  ASSERT_EQ(curve.size(), static_cast<size_t>(steps_total));
  for (int i = 0; i < steps_total; ++i) EXPECT_EQ(curve[i], i + 1);
  EXPECT_EQ(tracker::Query(central).run(run_id(central, uid)).status, "finished");
  EXPECT_EQ(tracker::Query(central).runs().size(), 1u);
}

// Two "hosts": as root, a network namespace of its own for the second, joined to this one by a
// veth pair (Debian's iproute2), so that a process there reaches this one only at `a` and this
// one reaches it only at `b`. Not root, or no namespaces here (a chroot, a container): both are
// 127.0.0.1, and `description` says so.
struct TwoHosts {
  std::string a = "127.0.0.1", b = "127.0.0.1", ns, veth;
  std::vector<std::string> launcher_b;  // runs a command on host b
  std::string description;

  TwoHosts() {
    const int tag = static_cast<int>(getpid() % 200) + 20;
    ns = "i3lab-test-" + std::to_string(getpid());
    veth = "i3v" + std::to_string(getpid() % 100000);
    const std::string subnet = "10.213." + std::to_string(tag) + ".";
    const std::string setup = "ip netns add " + ns + " && ip link add " + veth + "a type veth peer name " + veth + "b && ip link set " +
                              veth + "b netns " + ns + " && ip addr add " + subnet + "1/24 dev " + veth + "a && ip link set " + veth +
                              "a up && ip -n " + ns + " addr add " + subnet + "2/24 dev " + veth + "b && ip -n " + ns + " link set " +
                              veth + "b up && ip -n " + ns + " link set lo up";
    if (geteuid() != 0 || std::system((setup + " 2>" + ::testing::TempDir() + "/netns.err").c_str()) != 0) {
      description = geteuid() != 0 ? "not root: both ranks on 127.0.0.1 (loopback), not across two network namespaces"
                                   : "no network namespaces here (" + file_contents(::testing::TempDir() + "/netns.err") +
                                         "): both ranks on 127.0.0.1 (loopback)";
      cleanup();
      ns.clear();
      return;
    }
    a = subnet + "1";
    b = subnet + "2";
    launcher_b = {"ip", "netns", "exec", ns};
    description = "host a: " + a + " (this network namespace), host b: " + b + " (namespace " + ns + "), joined by veth " + veth;
  }
  ~TwoHosts() { cleanup(); }
  void cleanup() {
    if (geteuid() != 0) return;
    std::system(("ip netns del " + ns + " 2>/dev/null; ip link del " + veth + "a 2>/dev/null").c_str());
  }
};

// A 2-rank job's ranks on two hosts: each worker says how it is reached (--address), the
// coordinator makes one of them the master, and the ranks' process group meets across the
// veth pair.
TEST_F(TrainingCluster, TheRanksOfAJobOnTwoHostsTrainOneRunAcrossTheirAddresses) {
  TwoHosts hosts;
  std::cerr << hosts.description << "\n";
  Coordinator c = start_coordinator(dir_, "tcp://" + hosts.a + ":*", {"--insecure"});
  auto wa = start_worker(dir_, c.endpoint, "wa", {"--slots", "1", "--address", hosts.a});
  auto wb = std::make_unique<Proc>(std::vector<std::string>{"worker", "--coordinator", c.endpoint, "--name", "wb", "--workdir", dir_ + "/wb",
                                                            "--slots", "1", "--address", hosts.b},
                                   dir_ + "/wb.err", std::map<std::string, std::string>{}, hosts.launcher_b);
  ASSERT_TRUE(eventually([&] { return I3labResult(i3lab({"workers", "--coordinator", c.endpoint})).out.find("wb") != std::string::npos; }))
      << wb->stderr_text();
  json cfg = config(60, 30);
  cfg["distributed"] = {{"ranks", 2}, {"timeout_s", 30}};
  const int64_t id = submit_training(c.endpoint, cfg);
  ASSERT_TRUE(eventually([&] { return job(c.endpoint, id).value("status", "") == "succeeded"; }, std::chrono::seconds(120)))
      << job(c.endpoint, id).dump() << wa->stderr_text() << wb->stderr_text();
  // One rank on each host, both meeting at the master's address.
  std::string logs;
  for (const char* w : {"wa", "wb"})
    for (const char* f : {"/attempt-1.log", "/attempt-1.rank-1.log"})
      logs += file_contents(dir_ + "/" + w + "/job-" + std::to_string(id) + f);
  const size_t a_at = logs.find("meeting the others at " + hosts.a + ":"), b_at = logs.find("meeting the others at " + hosts.b + ":");
  EXPECT_TRUE(a_at != std::string::npos || b_at != std::string::npos) << logs;
  EXPECT_NE(logs.find("rank 1 of 2"), std::string::npos) << logs;
  EXPECT_TRUE(fs::exists(dir_ + "/wa/job-" + std::to_string(id)) && fs::exists(dir_ + "/wb/job-" + std::to_string(id)));
  const std::string central = dir_ + "/i3lab.db", uid = job(c.endpoint, id)["run"];
  EXPECT_EQ(steps(central, run_id(central, uid), "train/loss").size(), 60u);
  EXPECT_EQ(steps(central, run_id(central, uid), "rank/1/rss_bytes").size(), 60u);
}

// A worker Slurm started inside a step (configs/deploy/slurm: srun, one worker per node)
// carries SLURM_PROCID and SLURM_NTASKS; its single-rank training jobs are still ranks 0 of 1.
TEST_F(TrainingCluster, ASingleRankJobOnAWorkerInsideASlurmStepTrainsAlone) {
  Coordinator c = start_coordinator(dir_);
  auto worker = std::make_unique<Proc>(
      std::vector<std::string>{"worker", "--coordinator", c.endpoint, "--name", "node1", "--workdir", dir_ + "/node1"}, dir_ + "/node1.err",
      std::map<std::string, std::string>{{"SLURM_PROCID", "1"}, {"SLURM_NTASKS", "2"}, {"SLURM_STEP_ID", "0"},
                                         {"SLURM_STEP_NODELIST", "node[0-1]"}, {"SLURM_JOB_ID", "42"}});
  const int64_t id = submit_training(c.endpoint, config(20, 10));
  ASSERT_TRUE(eventually([&] { return job(c.endpoint, id).value("status", "") == "succeeded"; }, std::chrono::seconds(90)))
      << job(c.endpoint, id).dump() << worker->stderr_text();
  const std::string central = dir_ + "/i3lab.db", uid = job(c.endpoint, id)["run"];
  EXPECT_EQ(steps(central, run_id(central, uid), "train/loss").size(), 20u);
}

TEST_F(TrainingCluster, NothingIsLostOrDoubledWhileTheCoordinatorIsAway) {
  Coordinator c = start_coordinator(dir_);
  const std::string endpoint = c.endpoint;
  auto worker = start_worker(dir_, endpoint, "w1");
  // Checkpoints every 100 steps, only the newest 2 kept: versions are logged and deleted while
  // the coordinator is away, and arrive numbered as they were.
  const int64_t id = submit_training(endpoint, config(1500, 100, 2));
  const std::string central = dir_ + "/i3lab.db";
  std::string uid;
  ASSERT_TRUE(eventually(
      [&] {
        uid = job(endpoint, id).value("run", "");
        const int64_t run = run_id(central, uid);
        return run > 0 && !steps(central, run, "train/loss").empty();
      },
      std::chrono::seconds(60)))
      << worker->stderr_text();
  c.proc->signal(SIGKILL);
  c.proc->wait();
  std::this_thread::sleep_for(std::chrono::seconds(10));
  Coordinator again = start_coordinator(dir_, endpoint);
  ASSERT_TRUE(eventually([&] { return job(endpoint, id).value("status", "") == "succeeded"; }, std::chrono::seconds(120)))
      << job(endpoint, id).dump() << worker->stderr_text();
  EXPECT_EQ(job(endpoint, id)["attempts"], 1);
  const std::string local = dir_ + "/w1/job-" + std::to_string(id) + "/attempt-1.db";
  ASSERT_TRUE(eventually([&] { return tracker::Query(central).run(run_id(central, uid)).status == "finished"; }));
  expect_same_run(central, local, uid);
  EXPECT_EQ(steps(central, run_id(central, uid), "train/loss").size(), 1500u);
}

}  // namespace
