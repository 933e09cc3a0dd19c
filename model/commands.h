// The `i3lab` subcommands that live in model/.
#pragma once

#include <vector>

#include "common/cli.h"

namespace i3 {
// tokenizer, data prepare-demo, model, score, generate
std::vector<cli::Command> model_commands();
// train, eval
std::vector<cli::Command> train_commands();
}
