// Running the real i3lab binary from a test, as a user does.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/test_paths.h"

struct I3labResult {
  int status;  // exit status; -1 if killed by a signal
  std::string out, err;
};

// `s` quoted for /bin/sh.
inline std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// The shell command that runs i3lab with `args`.
inline std::string i3lab_command(const std::vector<std::string>& args) {
  std::string cmd = I3LAB_BINARY;
  for (const auto& a : args) cmd += " " + shell_quote(a);
  return cmd;
}

// Runs i3lab with `args`, capturing stdout, stderr and the exit status.
inline I3labResult i3lab(const std::vector<std::string>& args) {
  const std::string err_path = ::testing::TempDir() + "/stderr_" +
                               ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".txt";
  I3labResult r;
  FILE* pipe = popen((i3lab_command(args) + " 2>" + err_path).c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  const int raw = pclose(pipe);
  r.status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  r.err = file_contents(err_path);
  return r;
}
