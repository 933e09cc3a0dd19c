#include "coordinator/local/local_cluster.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "common/util/files.h"

extern char** environ;

namespace coordinator {
LocalCluster::LocalCluster(LocalOptions options) : options_(std::move(options)) {
  std::filesystem::create_directories(options_.dir);
  if (options_.i3lab_program.empty()) options_.i3lab_program = util::sibling_program("i3lab");
  Options o;
  o.db_path = options_.db_path;
  o.listen = options_.listen;
  o.record_assign_latencies = options_.record_assign_latencies;
  auto log = std::make_shared<std::ofstream>(options_.dir + "/coordinator.log", std::ios::app);
  auto mu = std::make_shared<std::mutex>();
  o.log = [log, mu](const std::string& line) {
    std::lock_guard<std::mutex> lock(*mu);
    *log << line << std::endl;
  };
  coordinator_ = std::make_unique<Coordinator>(o);
  serving_ = std::thread([this] {
    try {
      coordinator_->serve(stop_);
    } catch (...) {
      error_ = std::current_exception();
    }
  });

  for (int i = 0; i < options_.workers; ++i) {
    const std::string name = "worker-" + std::to_string(i + 1);
    std::vector<std::string> args = {options_.i3lab_program, "worker", "--coordinator", endpoint(), "--name", name,
                                     "--workdir", options_.dir + "/" + name};
    if (options_.slots_per_worker > 0) args.insert(args.end(), {"--slots", std::to_string(options_.slots_per_worker)});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    const std::string log_path = options_.dir + "/" + name + ".log";
    posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) {
      stop();
      throw std::runtime_error("cannot start " + options_.i3lab_program + " worker: " + strerror(rc));
    }
    workers_.push_back(pid);
  }
}

LocalCluster::~LocalCluster() { stop(); }

void LocalCluster::stop() {
  if (stopped_) return;
  stopped_ = true;
  for (pid_t pid : workers_) kill(pid, SIGTERM);
  for (pid_t pid : workers_) waitpid(pid, nullptr, 0);
  stop_ = true;
  if (serving_.joinable()) serving_.join();
}

}  // namespace coordinator
