// A real Slurm: Debian's munged, slurmctld and slurmd started on localhost by the test (one
// node, 2 CPUs, its own ports, key and folders). configs/deploy/slurm/i3lab-workers.sbatch
// submitted with sbatch: its worker registers with a real coordinator and runs a job. And
// `srun -n 2 i3lab train CONFIG`: two ranks of one data-parallel run, from Slurm's variables.
// Needs root (the daemons) and the packages: skipped, saying so, otherwise.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "tests/cluster.h"

namespace fs = std::filesystem;

namespace {

int sh(const std::string& command) { return std::system(command.c_str()); }

std::string sh_out(const std::string& command) {
  std::string out;
  if (FILE* p = popen(command.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
  }
  return out;
}

class Slurm : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "not root: starting munged, slurmctld and slurmd needs root (CI runs as root)";
    for (const char* program : {"/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd", "/usr/bin/sbatch"})
      if (!fs::exists(program))
        GTEST_SKIP() << program << " is missing: scripts/setup --test-tools installs Debian's slurmctld, slurmd, slurm-client and munge";
    const passwd* munge_user = getpwnam("munge");
    if (!munge_user) GTEST_SKIP() << "no user munge (Debian's munge package makes it)";
    dir_ = cluster_dir();
    // munged: its own key, socket and files, run as user munge (it refuses root).
    const std::string m = dir_ + "/munge";
    fs::create_directories(m);
    ASSERT_EQ(chown(m.c_str(), munge_user->pw_uid, munge_user->pw_gid), 0);
    fs::permissions(m, fs::perms::owner_all | fs::perms::group_exec | fs::perms::others_exec);  // 711: the socket must be reachable
    ASSERT_EQ(sh("dd if=/dev/urandom of=" + m + "/munge.key bs=1024 count=1 2>/dev/null && chown munge:munge " + m +
                 "/munge.key && chmod 400 " + m + "/munge.key"),
              0);
    ASSERT_EQ(sh("runuser -u munge -- /usr/sbin/munged --key-file=" + m + "/munge.key --socket=" + m + "/munge.sock --pid-file=" + m +
                 "/munged.pid --log-file=" + m + "/munged.log --seed-file=" + m + "/munged.seed"),
              0)
        << file_contents(m + "/munged.log");
    pid_files_.push_back(m + "/munged.pid");
    // Slurm: one node (this host, 2 CPUs) on free ports, everything under dir_.
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    std::string short_host = host;
    short_host = short_host.substr(0, short_host.find('.'));
    short_host_ = short_host;
    for (const char* sub : {"state", "spool", "log"}) fs::create_directories(dir_ + "/" + sub);
    conf_ = dir_ + "/slurm.conf";
    // No cgroups: slurmd's autodetection fails where no cgroup file system is mounted (a chroot,
    // a container), and this test needs none (proctrack/linuxproc, task/none).
    std::ofstream(dir_ + "/cgroup.conf") << "CgroupPlugin=cgroup/v1\n";
    const int ctld_port = free_port();
    int slurmd_port = free_port();
    while (slurmd_port == ctld_port) slurmd_port = free_port();
    std::ofstream(conf_) << "ClusterName=i3labtest\n"
                         << "SlurmctldHost=" << short_host << "(127.0.0.1)\n"
                         << "SlurmctldPort=" << ctld_port << "\nSlurmdPort=" << slurmd_port << "\n"
                         << "AuthType=auth/munge\nCredType=cred/munge\nAuthInfo=socket=" << m << "/munge.sock\n"
                         << "SlurmUser=root\nSlurmdUser=root\n"
                         << "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\n"
                         << "SelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n"
                         << "AccountingStorageType=accounting_storage/none\nJobCompType=jobcomp/none\n"
                         << "JobAcctGatherType=jobacct_gather/none\nMpiDefault=none\nReturnToService=2\n"
                         << "StateSaveLocation=" << dir_ << "/state\nSlurmdSpoolDir=" << dir_ << "/spool\n"
                         << "SlurmctldPidFile=" << dir_ << "/slurmctld.pid\nSlurmdPidFile=" << dir_ << "/slurmd.pid\n"
                         << "SlurmctldLogFile=" << dir_ << "/log/slurmctld.log\nSlurmdLogFile=" << dir_ << "/log/slurmd.log\n"
                         << "NodeName=" << short_host << " NodeAddr=127.0.0.1 CPUs=2 State=UNKNOWN\n"
                         << "PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n";
    setenv("SLURM_CONF", conf_.c_str(), 1);
    ASSERT_EQ(sh("/usr/sbin/slurmctld -f " + conf_), 0) << file_contents(dir_ + "/log/slurmctld.log");
    pid_files_.push_back(dir_ + "/slurmctld.pid");
    ASSERT_EQ(sh("/usr/sbin/slurmd -f " + conf_), 0) << file_contents(dir_ + "/log/slurmd.log");
    pid_files_.push_back(dir_ + "/slurmd.pid");
    ASSERT_TRUE(eventually([&] { return sh_out("sinfo -h -o %T 2>/dev/null").find("idle") != std::string::npos; }))
        << sh_out("sinfo 2>&1") << file_contents(dir_ + "/log/slurmctld.log");
  }

  void TearDown() override {
    if (!conf_.empty()) {  // the workers leave before their daemons do
      sh("scancel --quiet --user=root >/dev/null 2>&1");
      eventually([] { return sh_out("squeue -h 2>/dev/null").empty(); }, std::chrono::seconds(15));
    }
    for (auto it = pid_files_.rbegin(); it != pid_files_.rend(); ++it) {
      std::ifstream in(*it);
      pid_t pid = 0;
      if (in >> pid && pid > 1) {
        kill(pid, SIGTERM);
        for (int i = 0; i < 100 && kill(pid, 0) == 0; ++i) usleep(50000);
      }
    }
    unsetenv("SLURM_CONF");
  }

  std::string dir_, conf_, short_host_;
  std::vector<std::string> pid_files_;
};

TEST_F(Slurm, TheSbatchTemplatesWorkerRegistersAndRunsAJob) {
  Coordinator c = start_coordinator(dir_);
  const std::string submitted = sh_out("I3LAB=" I3LAB_BINARY " I3LAB_WORKDIR=" + dir_ + " sbatch --parsable --cpus-per-task=2 --chdir=" +
                                       dir_ + " " I3LAB_SOURCE_DIR "/configs/deploy/slurm/i3lab-workers.sbatch " + c.endpoint + " 2>&1");
  const std::string slurm_job = submitted.substr(0, submitted.find_first_of("\n;"));
  ASSERT_FALSE(slurm_job.empty());
  ASSERT_NE(slurm_job.find_first_of("0123456789"), std::string::npos) << submitted;
  const std::string name_part = "-slurm-" + slurm_job;
  ASSERT_TRUE(eventually([&] { return i3lab({"workers", "--coordinator", c.endpoint}).out.find(name_part) != std::string::npos; },
                         std::chrono::seconds(60)))
      << sh_out("squeue 2>&1") << file_contents(dir_ + "/i3lab-workers-" + slurm_job + ".out") << file_contents(dir_ + "/log/slurmd.log");
  // The worker offers what Slurm gave the job: 2 CPUs, no GPUs.
  const nlohmann::json workers = nlohmann::json::parse(i3lab({"workers", "--coordinator", c.endpoint, "--json"}).out);
  ASSERT_EQ(workers.size(), 1u);
  EXPECT_EQ(workers[0]["cpu_slots"], 2);

  const std::string effect = dir_ + "/ran.txt";
  const int64_t id = submit(dir_, c.endpoint, {{"kind", "command"}, {"argv", {"sh", "-c", "echo \"$I3LAB_JOB_ID\" >> " + effect}}});
  ASSERT_TRUE(eventually([&] { return jobs_by_id(jobs_json(c.endpoint))[id].value("status", "") == "succeeded"; }))
      << jobs_json(c.endpoint).dump();
  EXPECT_EQ(file_lines(effect), std::vector<std::string>{std::to_string(id)});
  EXPECT_NE(jobs_by_id(jobs_json(c.endpoint))[id]["worker"].get<std::string>().find(name_part), std::string::npos);

  // Ending the allocation ends the worker cleanly: it says BYE.
  sh("scancel " + slurm_job);
  EXPECT_TRUE(eventually([&] { return i3lab({"workers", "--coordinator", c.endpoint}).out.find("left") != std::string::npos; }))
      << i3lab({"workers", "--coordinator", c.endpoint}).out;
}

// The launcher contract: `srun -n 2 i3lab train CONFIG` trains one run as 2 ranks, the
// process group found from SLURM_PROCID, SLURM_NTASKS and the step's node list alone.
TEST_F(Slurm, SrunWithTwoTasksTrainsOneRunAsTwoRanks) {
  nlohmann::json config = tiny_training(dir_, 12);
  config["logging"]["eval_interval"] = 6;
  config["distributed"] = {{"ranks", 2}, {"timeout_s", 60}};
  write_file(dir_ + "/tiny.json", config.dump());
  // The master is the node list's first host, by name; where that name does not resolve (a
  // chroot without /etc/hosts) MASTER_ADDR says where it is, as a site's prolog would.
  addrinfo* found = nullptr;
  const bool resolves = getaddrinfo(short_host_.c_str(), nullptr, nullptr, &found) == 0;
  if (found) freeaddrinfo(found);
  if (!resolves) std::cerr << "note: host name " << short_host_ << " does not resolve here; MASTER_ADDR=127.0.0.1 is given\n";
  const std::string db = dir_ + "/runs.db";
  const std::string out = sh_out(std::string(resolves ? "" : "MASTER_ADDR=127.0.0.1 ") + "I3LAB_THREADS=1,1 srun -n 2 --chdir=" + dir_ +
                                 " " I3LAB_BINARY " train " + dir_ + "/tiny.json --db " + db + " 2>&1; echo \"exit $?\"");
  ASSERT_NE(out.find("exit 0"), std::string::npos) << out << file_contents(dir_ + "/log/slurmd.log");
  EXPECT_NE(out.find("rank 1 of 2 (slurm)"), std::string::npos) << out;
  EXPECT_NE(out.find("rank 1 finished at step 12"), std::string::npos) << out;
  // One run, of 2 ranks: 256 tokens per step (2 × 2 windows of 64), both ranks' metrics.
  const nlohmann::json runs = nlohmann::json::parse(i3lab({"runs", "--db", db, "--json"}).out);
  ASSERT_EQ(runs.size(), 1u) << runs.dump();
  const std::string id = std::to_string(runs[0]["id"].get<int64_t>());
  const I3labResult history = i3lab({"export-history", "--db", db, "--run", id});
  ASSERT_EQ(history.status, 0) << history.err;
  EXPECT_NE(history.out.substr(0, history.out.find('\n')).find("rank/1/rss_bytes"), std::string::npos) << history.out;
  EXPECT_EQ(std::count(history.out.begin(), history.out.end(), '\n'), 1 + 13) << history.out;  // steps 0 (validation) … 12
  EXPECT_EQ(runs[0]["status"], "finished");
}

}  // namespace
