// The `i3lab` subcommands of the tracker: runs, export-history, sync, artifacts, artifact get|delete.
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace tracker {
std::vector<cli::Command> tracker_commands();
}
