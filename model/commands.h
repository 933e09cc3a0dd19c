// The `i3lab` subcommands that live in model/: tokenizer, model, score, generate.
#pragma once

#include <vector>

#include "common/cli.h"

namespace i3 {
std::vector<cli::Command> model_commands();
}
