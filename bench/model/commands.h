// `i3lab bench model|train|tokenizer|generate`: measurements of model/ that print JSON, recorded
// in docs/benchmarks.md. They run in the model program; their usage texts are in
// model/cli/catalog.cc.
#pragma once

#include <map>
#include <string>

#include "common/cli/cli.h"

namespace i3 {
std::map<std::string, cli::Handler> bench_handlers();
}
