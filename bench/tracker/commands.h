// `i3lab bench tracker`: the tracker's ingest and query speed (docs/benchmarks.md).
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace tracker {
std::vector<cli::Command> bench_commands();
}
