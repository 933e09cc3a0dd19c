// The tracker under several real processes: concurrent writers and a writer killed mid-stream.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <iostream>

#include "tests/test_paths.h"
#include "tracker/query/query.h"
#include "tracker/run/run.h"

namespace tracker {
namespace {

// Runs `body` in a child process; the child exits 0 if it returns, 1 if it throws.
pid_t spawn(const std::function<void()>& body) {
  pid_t pid = fork();
  if (pid == 0) {
    int code = 0;
    try {
      body();
    } catch (const std::exception& e) {
      std::cerr << "child " << getpid() << ": " << e.what() << std::endl;
      code = 1;
    }
    _exit(code);
  }
  return pid;
}

TEST(TrackerProcesses, FourWritersOnOneFileNeverFailWithLocked) {
  const std::string path = test_path("tracker.db");  // created by the children, concurrently
  constexpr int kWriters = 4, kSteps = 10000;
  std::vector<pid_t> children;
  for (int w = 0; w < kWriters; ++w) {
    children.push_back(spawn([&, w] {
      Store::Options o;
      o.batch_points = 100;  // many small transactions, to collide often
      o.flush_interval_ms = 1;
      Store store(path, o);
      tracker::Run run = tracker::Run::create(store, {"multi", "writer-" + std::to_string(w)});
      for (int step = 0; step < kSteps; ++step) {
        run.log(step, {{"loss", 1.0 / (step + 1)}, {"writer", 1.0 * w}});
        if (step % 1000 == 0) run.log_console("stdout", "step " + std::to_string(step));
      }
      run.finish();
    }));
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a writer process failed (see its stderr)";
  }
  Query q(path);
  auto runs = q.runs();
  ASSERT_EQ(runs.size(), static_cast<size_t>(kWriters));
  for (const auto& r : runs) {
    EXPECT_EQ(r.status, "finished");
    EXPECT_EQ(r.summary["loss"]["count"], kSteps) << r.name;
    EXPECT_EQ(q.points(r.id, "writer", 0, kSteps).size(), static_cast<size_t>(kSteps));
    EXPECT_EQ(q.console(r.id).size(), 10u);
  }
}

TEST(TrackerProcesses, AWriterKilledMidStreamKeepsEveryAcknowledgedBatch) {
  const std::string path = test_path("tracker.db");
  int acks[2];
  ASSERT_EQ(pipe(acks), 0);
  pid_t child = spawn([&] {
    close(acks[0]);
    Store store(path);
    tracker::Run run = tracker::Run::create(store, {"crash", "victim"});
    for (int64_t step = 0;; ++step) {
      run.log(step, {{"x", static_cast<double>(step)}, {"y", -1.0 * step}});
      if (step % 500 == 499) {
        run.flush();  // acknowledged: everything up to `step` is committed
        if (write(acks[1], &step, sizeof step) != sizeof step) return;
      }
    }
  });
  close(acks[1]);
  int64_t acked = -1, got;
  for (int n = 0; n < 40 && read(acks[0], &got, sizeof got) == sizeof got; ++n) acked = got;
  kill(child, SIGKILL);  // mid-stream: points after the last flush are in flight
  int status = 0;
  waitpid(child, &status, 0);
  while (read(acks[0], &got, sizeof got) == sizeof got) acked = got;
  close(acks[0]);
  ASSERT_TRUE(WIFSIGNALED(status));
  ASSERT_GE(acked, 499);

  {
    Query q(path);
    Stmt check(q.db(), "PRAGMA integrity_check");
    ASSERT_TRUE(check.step());
    EXPECT_EQ(check.text(0), "ok");
    auto runs = q.runs();
    ASSERT_EQ(runs.size(), 1u);
    EXPECT_EQ(runs[0].status, "running");  // it never finished
    auto x = q.points(runs[0].id, "x", 0, acked);
    ASSERT_EQ(x.size(), static_cast<size_t>(acked + 1)) << "an acknowledged point is missing";
    for (int64_t s = 0; s <= acked; ++s) ASSERT_EQ(x[s].last, static_cast<double>(s));
    EXPECT_GE(runs[0].summary["x"]["count"].get<int64_t>(), acked + 1);
  }
  // The file opens for writing again and the run can go on from its last acknowledged step.
  Store store(path);
  tracker::Run run = tracker::Run::resume(store, 1, acked);
  run.log(acked + 1, {{"x", -5.0}});
  run.finish();
  Query q(path);
  EXPECT_EQ(q.run(1).summary["x"]["count"], acked + 2);
  EXPECT_EQ(q.run(1).summary["x"]["last"], -5.0);
}

}  // namespace
}  // namespace tracker
