// i3lab: one binary, subcommands from each library.
#include <vector>

#include "bench/commands.h"
#include "common/cli.h"
#include "model/commands.h"

int main(int argc, char** argv) {
  std::vector<cli::Command> commands = i3::model_commands();
  for (auto& c : i3::bench_commands()) commands.push_back(std::move(c));
  return cli::dispatch(commands, argc, argv);
}
