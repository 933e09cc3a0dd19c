// The model program's command table: every `i3lab` subcommand that needs the model, and so
// LibTorch, runs in `i3lab-model`, the executable built beside `i3lab`.
//
// This file holds their names, one-line summaries, usage texts and flags, without handlers and
// without LibTorch. The control plane (`i3lab`: CLI, tracker, and later coordinator, worker and
// web, which must start in milliseconds and run on hosts without the torch stack) lists these
// commands in its help, answers their --help, rejects unknown flags, and then hands the whole
// command line to `i3lab-model` with exec_model_program(). `i3lab-model` binds a handler to
// each entry (model/cli/handlers.h). The user sees one command name space.
#pragma once

#include <vector>

#include "common/cli/cli.h"

namespace i3 {

// The model program's file name; it lives in the same folder as `i3lab`.
constexpr const char* kModelProgram = "i3lab-model";

// tokenizer, data prepare-demo, model info|init, score, generate, train, eval,
// bench model|train|tokenizer|generate. Entries have no `run`.
std::vector<cli::Command> model_catalog();

// LibTorch's element-wise kernels run on OpenMP threads and its matrix products on OpenBLAS
// threads; under OpenMP's default wait policy idle OpenMP threads spin and starve the BLAS
// threads on a small machine (docs/benchmarks.md: ~25 % slower training steps). libgomp reads
// OMP_WAIT_POLICY once, when it is loaded, so it must be in the environment before the model
// program starts. Sets it to PASSIVE unless the user set it.
void prefer_passive_openmp();

// Replaces this process with `i3lab-model` beside it, with the same arguments, after
// prefer_passive_openmp(). Returns only on failure: says what to build and returns 127.
int exec_model_program(char** argv);

}  // namespace i3
