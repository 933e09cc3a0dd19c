// `i3lab bench http`: series requests against the HTTP API (docs/benchmarks.md).
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace web {

std::vector<cli::Command> bench_web_commands();

}  // namespace web
