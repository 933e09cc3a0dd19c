// `i3lab bench sweep`: random vs TPE, each with and without ASHA, on the synthetic objective
// through a real coordinator and workers (docs/benchmarks.md).
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace sweep {

std::vector<cli::Command> bench_sweep_commands();

}  // namespace sweep
