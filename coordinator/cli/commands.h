// The coordinator's `i3lab` subcommands: coordinator, submit, jobs, cancel, logs, workers, up, and
// the sweep commands (sweep_commands.h).
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace coordinator {
std::vector<cli::Command> coordinator_commands();
}
