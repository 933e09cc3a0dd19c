#include "worker/process/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
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

  const pid_t pid = fork();
  if (pid < 0) {
    for (int fd : {out[0], out[1], err[0], err[1], status[0], status[1]}) close(fd);
    throw SpawnError(std::string("cannot fork: ") + strerror(errno));
  }
  if (pid == 0) {
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the worker died before the line above
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig = 1; sig < NSIG; ++sig) signal(sig, SIG_DFL);
    int step = 0;  // what failed, for the parent's message
    const int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(out[1], 1) < 0 || dup2(err[1], 2) < 0) step = 1;
    else if (chdir(cwd.c_str()) != 0) step = 2;
    else {
      execvpe(cargv[0], cargv.data(), cenv.data());
      step = 3;
    }
    const int report[2] = {step, errno};
    ssize_t ignored = write(status[1], report, sizeof report);
    (void)ignored;
    _exit(127);
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
    if (report[0] == 3) throw SpawnError("cannot run '" + argv[0] + "': " + why + (report[1] == ENOENT ? " (not found in PATH)" : ""));
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
