// `i3lab bench ...`: benchmarks that print JSON, recorded in docs/benchmarks.md.
#pragma once

#include <vector>

#include "common/cli.h"

namespace i3 {
std::vector<cli::Command> bench_commands();
}
