// i3lab, the control plane: one command name space for the user, no LibTorch.
//
// Tracker, coordinator and worker commands (and later the web server) run here and start in
// milliseconds. Commands that need the model (model/cli/catalog.h) are listed, checked and
// explained here too, then handed to `i3lab-model` beside this executable.
#include <algorithm>
#include <vector>

#include "bench/sweep/commands.h"
#include "bench/tracker/commands.h"
#include "bench/web/commands.h"
#include "common/cli/cli.h"
#include "coordinator/cli/commands.h"
#include "model/cli/catalog.h"
#include "tracker/cli/commands.h"
#include "web/cli/commands.h"
#include "worker/cli/commands.h"

int main(int argc, char** argv) {
  std::vector<cli::Command> commands = i3::model_catalog();
  for (cli::Command& c : commands) c.run = [argv](const cli::Args&) { return i3::exec_model_program(argv); };
  for (auto& c : tracker::tracker_commands()) commands.push_back(std::move(c));
  for (auto& c : coordinator::coordinator_commands()) commands.push_back(std::move(c));
  for (auto& c : worker::worker_commands()) commands.push_back(std::move(c));
  for (auto& c : web::web_commands()) commands.push_back(std::move(c));
  for (auto& c : tracker::bench_commands()) commands.push_back(std::move(c));
  for (auto& c : web::bench_web_commands()) commands.push_back(std::move(c));
  for (auto& c : sweep::bench_sweep_commands()) commands.push_back(std::move(c));
  // Help lists the benchmarks last, together.
  std::stable_partition(commands.begin(), commands.end(), [](const cli::Command& c) { return c.path.rfind("bench ", 0) != 0; });
  return cli::dispatch(commands, argc, argv);
}
