// `i3lab ui`: the dashboard and the read API over one tracker database.
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace web {

std::vector<cli::Command> web_commands();

}  // namespace web
