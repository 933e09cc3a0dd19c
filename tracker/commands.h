// The `i3lab` subcommands that live in tracker/: runs, export-history, bench tracker.
#pragma once

#include <vector>

#include "common/cli.h"

namespace tracker {
std::vector<cli::Command> tracker_commands();
}
