// The `i3lab worker` subcommand.
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace worker {
std::vector<cli::Command> worker_commands();
}
