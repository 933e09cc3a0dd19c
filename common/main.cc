// i3lab: one binary, subcommands from each library.
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <vector>

#include "bench/commands.h"
#include "common/cli.h"
#include "model/commands.h"
#include "tracker/commands.h"

namespace {

// LibTorch runs its element-wise kernels on OpenMP threads and its matrix products on
// OpenBLAS threads. Under OpenMP's default wait policy idle OpenMP threads spin and starve the
// BLAS threads on a small machine (docs/benchmarks.md: ~25 % slower training steps). libgomp
// reads OMP_WAIT_POLICY once, when it is loaded, so i3lab sets it and re-executes itself
// before anything else. A value the user set is left alone.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  execv("/proc/self/exe", argv);  // returns only on failure: then run as we are
}

// glibc serves allocations over 32 MB with fresh mmap()s and returns them on free, so a
// training step that allocates its 145 MB logits and 73 MB embedding gradient anew each time
// page-faults them in again every step (1.6 s of a 4.2 s i3-80m step here). Keeping freed memory
// in the heap for reuse costs ~13 % more peak memory (docs/benchmarks.md).
void keep_freed_memory() {
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  keep_freed_memory();
  std::vector<cli::Command> commands = i3::model_commands();
  for (auto& c : i3::train_commands()) commands.push_back(std::move(c));
  for (auto& c : tracker::tracker_commands()) commands.push_back(std::move(c));
  for (auto& c : i3::bench_commands()) commands.push_back(std::move(c));
  return cli::dispatch(commands, argc, argv);
}
