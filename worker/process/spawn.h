// Job processes: each in a process group of its own, so that a signal reaches everything the
// job started, with its output on pipes the worker reads, and tied to the worker's life (a
// worker killed with SIGKILL takes its jobs' lead processes with it: PR_SET_PDEATHSIG), since
// the coordinator re-runs them elsewhere.
#pragma once

#include <sys/types.h>

#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace process {

// The program could not be started (not found, not executable, no such working directory).
struct SpawnError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Spawned {
  pid_t pid = -1;  // also the process group id
  int stdout_fd = -1, stderr_fd = -1;  // read ends, non-blocking, close-on-exec
};

// Starts argv[0] (looked up in PATH when it has no '/') with `env` ("NAME=value" each, the
// whole environment) in `cwd`, stdin from /dev/null. Returns once the program is running (exec
// succeeded). Throws SpawnError saying why not.
Spawned spawn(const std::vector<std::string>& argv, const std::vector<std::string>& env, const std::string& cwd);

// Sends `sig` to every process of the group `pgid` (ESRCH, nobody left, is fine).
void signal_group(pid_t pgid, int sig);

struct Exit {
  pid_t pid = -1;
  int exit_code = 0;  // -1 when killed by a signal
  int signal = 0;     // the signal that killed it, or 0
};
// Reaps one ended child if there is one (never blocks).
std::optional<Exit> reap();

// A file descriptor that becomes readable whenever a child ends (SIGCHLD), for poll(). The
// first call installs the handler. Call drain_child_signal() after waking on it.
int child_signal_fd();
void drain_child_signal();

}  // namespace process
