#include "worker/process/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <pthread.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace process {
namespace {

int self_pipe[2] = {-1, -1};

extern "C" void on_sigchld(int) {
  const int saved = errno;
  const char byte = 0;
  ssize_t ignored = write(self_pipe[1], &byte, 1);  // a full pipe is fine: the reader is awake anyway
  (void)ignored;
  errno = saved;
}

// argv0 as the path execve needs: as it is when it holds a '/', else the first executable file
// of that name in the PATH of `env` (or of this process). "" when there is none.
std::string find_program(const std::string& argv0, const std::vector<std::string>& env) {
  if (argv0.find('/') != std::string::npos) return argv0;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  if (const char* own = getenv("PATH")) path = own;
  for (const std::string& e : env)
    if (e.rfind("PATH=", 0) == 0) path = e.substr(5);
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    const std::string dir = end > start ? path.substr(start, end - start) : ".";
    const std::string candidate = dir + "/" + argv0;
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

void set_flags(int fd) {
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
}

}  // namespace

Spawned spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& cwd) {
  if (argv.empty()) throw SpawnError("no program to run");
  int out[2], err[2], status[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0 || pipe2(status, O_CLOEXEC) != 0)
    throw SpawnError(std::string("cannot create pipes: ") + strerror(errno));
  // Everything the child needs, built before fork (only async-signal-safe calls after it).
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const std::string& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);
  const pid_t parent = getpid();
  const std::string program = find_program(argv[0], env);
  if (program.empty()) {
    for (int fd : {out[0], out[1], err[0], err[1], status[0], status[1]}) close(fd);
    throw SpawnError("cannot run '" + argv[0] + "': not found in PATH");
  }
  // Signal handlers must not run in the vfork child, which shares this process's memory.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);

  // vfork: the child borrows this process's memory until it execs, so starting a job costs no
  // page-table copy (fork of a large worker). The child only makes system calls on values
  // prepared above.
  const pid_t pid = vfork();
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int step = 0;  // what failed, for the parent's message
    if (getppid() != parent) _exit(127);  // the worker died before the line above
    for (int sig = 1; sig < NSIG; ++sig) {
      struct sigaction current;
      if (sigaction(sig, nullptr, &current) == 0 && current.sa_handler != SIG_DFL && current.sa_handler != SIG_IGN)
        signal(sig, SIG_DFL);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) step = 1;
    else if (chdir(cwd.c_str()) != 0) step = 2;
    else {
      execve(program.c_str(), cargv.data(), cenv.data());
      step = 3;
    }
    const int report[2] = {step, errno};
    ssize_t ignored = write(status[1], report, sizeof report);
    (void)ignored;
    _exit(127);
  }
  const int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1], status[0], status[1]}) close(fd);
    throw SpawnError(std::string("cannot start a process: ") + strerror(fork_errno));
  }
  setpgid(pid, pid);  // also here, so the group exists before anyone signals it
  close(out[1]);
  close(err[1]);
  close(status[1]);
  int report[2];
  ssize_t n;
  do n = read(status[0], report, sizeof report);
  while (n < 0 && errno == EINTR);
  close(status[0]);
  if (n == sizeof report) {  // exec did not happen: the child exits 127
    waitpid(pid, nullptr, 0);
    close(out[0]);
    close(err[0]);
    const std::string why = strerror(report[1]);
    if (report[0] == 2) throw SpawnError("cannot enter the working directory " + cwd + ": " + why);
    if (report[0] == 3) throw SpawnError("cannot run '" + argv[0] + "' (" + program + "): " + why);
    throw SpawnError("cannot set up the job's standard streams: " + why);
  }
  set_flags(out[0]);
  set_flags(err[0]);
  return {pid, out[0], err[0]};
}

void signal_group(pid_t pgid, int sig) {
  if (pgid > 0) kill(-pgid, sig);
}

std::optional<Exit> reap() {
  int status = 0;
  pid_t pid;
  do pid = waitpid(-1, &status, WNOHANG);
  while (pid < 0 && errno == EINTR);
  if (pid <= 0) return std::nullopt;
  Exit e;
  e.pid = pid;
  if (WIFEXITED(status)) e.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) e.exit_code = -1, e.signal = WTERMSIG(status);
  return e;
}

int child_signal_fd() {
  if (self_pipe[0] < 0) {
    if (pipe2(self_pipe, O_CLOEXEC | O_NONBLOCK) != 0) throw std::runtime_error(std::string("pipe: ") + strerror(errno));
    struct sigaction sa {};
    sa.sa_handler = on_sigchld;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCHLD, &sa, nullptr);
  }
  return self_pipe[0];
}

void drain_child_signal() {
  char buf[256];
  while (read(self_pipe[0], buf, sizeof buf) > 0) {
  }
}

}  // namespace process
