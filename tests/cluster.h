// Real coordinator and worker processes for tests: `i3lab coordinator` on an ephemeral
// 127.0.0.1 port, `i3lab worker`s, and the CLI, as a user runs them.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/free_port.h"
#include "tests/i3lab_process.h"

// A child process running i3lab with `args` (and `env` added to the test's environment;
// through `launcher`, e.g. {"ip", "netns", "exec", "NS"}, when given): stdout on a pipe (read
// with read_line), stderr into `stderr_path`.
class Proc {
 public:
  Proc(const std::vector<std::string>& args, const std::string& stderr_path, const std::map<std::string, std::string>& env = {},
       const std::vector<std::string>& launcher = {})
      : stderr_path_(stderr_path) {
    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe");
    pid_ = fork();
    if (pid_ == 0) {
      setpgid(0, 0);
      dup2(out[1], 1);
      const int err = open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      dup2(err, 2);
      close(out[0]);
      for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
      std::vector<char*> argv;
      for (const auto& a : launcher) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(const_cast<char*>(I3LAB_BINARY));
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execvp(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    out_ = out[0];
  }
  ~Proc() {
    if (pid_ > 0 && !reaped_) {
      kill(-pid_, SIGKILL);
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (out_ >= 0) close(out_);
  }
  Proc(const Proc&) = delete;
  Proc& operator=(const Proc&) = delete;

  pid_t pid() const { return pid_; }

  // The next line of stdout, waiting up to `timeout`; "" on timeout or end.
  std::string read_line(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return "";
      pollfd p{out_, POLLIN, 0};
      if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[4096];
      const ssize_t n = read(out_, buf, sizeof buf);
      if (n <= 0) return "";
      buffer_.append(buf, n);
    }
  }

  void signal(int sig) { kill(pid_, sig); }
  // Waits for the process to end; its exit status, or -signal.
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    reaped_ = true;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -WTERMSIG(status);
  }
  bool alive() {
    if (reaped_) return false;
    int status;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      reaped_ = true;
      return false;
    }
    return true;
  }
  std::string stderr_text() const { return file_contents(stderr_path_); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
  bool reaped_ = false;
  std::string buffer_, stderr_path_;
};

// A tiny training set-up in `dir`: corpus.txt (tests/data/sample.txt eight times: 160 one-line
// documents), its vocabulary vocab.json, and the returned config of an i3-tiny model on them:
// batch 2, `steps` updates of lr 1e-2, a train/loss point every step, a checkpoint at the end.
inline nlohmann::json tiny_training(const std::string& dir, int steps) {
  const std::string text = file_contents(I3LAB_SOURCE_DIR "/tests/data/sample.txt");
  std::string corpus;
  for (int i = 0; i < 8; ++i) corpus += text;
  write_file(dir + "/corpus.txt", corpus);
  const I3labResult vocab = i3lab({"tokenizer", "build", "--out", dir + "/vocab.json", dir + "/corpus.txt"});
  if (vocab.status != 0) throw std::runtime_error("i3lab tokenizer build failed: " + vocab.err);
  return {{"project", "test"},
          {"model", {{"preset", "i3-tiny"}}},
          {"data",
           {{"vocab", dir + "/vocab.json"},
            {"sources", {{{"path", dir + "/corpus.txt"}, {"separator", "\n"}}}},
            {"val_fraction", 0.2},
            {"batch_size", 2},
            {"cache_dir", dir + "/cache"}}},
          {"optim", {{"lr", 1e-2}, {"warmup_iters", 2}, {"lr_decay_iters", steps}}},
          {"train", {{"max_iters", steps}, {"device", "cpu"}}},
          {"logging", {{"log_interval", 1}, {"eval_interval", 0}, {"eval_batches", 2}, {"sample_tokens", 0}}},
          {"checkpoint", {{"interval", 0}}}};
}

// A fresh folder per test.
inline std::string cluster_dir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string dir = ::testing::TempDir() + "/cluster_" + info->test_suite_name() + "_" + info->name();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// Polls `done` every 50 ms for up to `timeout`; whether it became true.
inline bool eventually(const std::function<bool()>& done, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// Starts `i3lab coordinator` on an ephemeral port (or `listen`) and returns it with its endpoint.
struct Coordinator {
  std::unique_ptr<Proc> proc;
  std::string endpoint;
};
inline Coordinator start_coordinator(const std::string& dir, const std::string& listen = "tcp://127.0.0.1:*",
                                     const std::vector<std::string>& extra = {}) {
  Coordinator c;
  std::vector<std::string> args = {"coordinator", "--db", dir + "/i3lab.db", "--listen", listen};
  args.insert(args.end(), extra.begin(), extra.end());
  c.proc = std::make_unique<Proc>(args, dir + "/coordinator.err");
  const std::string line = c.proc->read_line();  // "coordinator listening on ENDPOINT, database FILE"
  const size_t at = line.find("tcp://");
  if (at == std::string::npos) throw std::runtime_error("coordinator did not start: " + c.proc->stderr_text());
  c.endpoint = line.substr(at, line.find(',', at) - at);
  return c;
}

inline std::unique_ptr<Proc> start_worker(const std::string& dir, const std::string& endpoint, const std::string& name,
                                          std::vector<std::string> extra = {}) {
  std::vector<std::string> args = {"worker", "--coordinator", endpoint, "--name", name, "--workdir", dir + "/" + name};
  args.insert(args.end(), extra.begin(), extra.end());
  return std::make_unique<Proc>(args, dir + "/" + name + ".err");
}

// `i3lab jobs --json` as JSON (null when the coordinator does not answer).
inline nlohmann::json jobs_json(const std::string& endpoint) {
  const I3labResult r = i3lab({"jobs", "--coordinator", endpoint, "--json"});
  if (r.status != 0) return nullptr;
  return nlohmann::json::parse(r.out, nullptr, false);
}

// Submits a job spec (written to a file in `dir`); returns its id (-1 on failure).
inline int64_t submit(const std::string& dir, const std::string& endpoint, const nlohmann::json& spec) {
  static int n = 0;
  const std::string path = dir + "/job" + std::to_string(++n) + ".json";
  std::ofstream(path) << spec.dump();
  const I3labResult r = i3lab({"submit", path, "--coordinator", endpoint});
  if (r.status != 0) {
    ADD_FAILURE() << "submit failed: " << r.err;
    return -1;
  }
  return std::stoll(r.out);
}

inline std::map<int64_t, nlohmann::json> jobs_by_id(const nlohmann::json& list) {
  std::map<int64_t, nlohmann::json> out;
  if (list.is_array())
    for (const auto& j : list) out[j["id"].get<int64_t>()] = j;
  return out;
}

// Lines of a file.
inline std::vector<std::string> file_lines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}
