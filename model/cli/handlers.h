// The handlers of the model program's commands (catalog.h), by command path. Each parses its
// flags, calls one library function and prints.
#pragma once

#include <map>
#include <string>

#include "common/cli/cli.h"

namespace i3 {

// tokenizer build|encode|decode, data prepare-demo, model info|init, score, generate
std::map<std::string, cli::Handler> model_handlers();
// train, eval
std::map<std::string, cli::Handler> train_handlers();

}  // namespace i3
