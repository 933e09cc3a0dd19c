// i3lab-model: the commands that need the model (catalog.h), with LibTorch. Users reach it
// through `i3lab`, which hands these commands over; run directly it behaves the same.
#include <c10/util/Exception.h>
#include <malloc.h>
#include <unistd.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/model/commands.h"
#include "common/cli/cli.h"
#include "model/cli/catalog.h"
#include "model/cli/handlers.h"

namespace {

// catalog.h says why. When `i3lab` started us the variable is already set; run directly, we
// set it and re-execute ourselves before libgomp reads it. A value the user set is left alone.
void ensure_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  i3::prefer_passive_openmp();
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

// LibTorch's errors carry a C++ stack trace (~27 lines) in what(): a user's mistake (a model
// too large to allocate, a device that is not there) reads as one line, like any other error.
cli::Handler one_line_errors(cli::Handler handler) {
  return [handler](const cli::Args& args) {
    try {
      return handler(args);
    } catch (const c10::Error& e) {
      // "[enforce fail at alloc_cpu.cpp:75] err == 0. DefaultCPUAllocator: …": the part after
      // the source location and the failed condition is the one for people.
      std::string what = e.what_without_backtrace();
      if (what.rfind("[enforce fail at ", 0) == 0 && what.find("] ") != std::string::npos) {
        what = what.substr(what.find("] ") + 2);
        if (const size_t dot = what.find(". "); dot != std::string::npos && dot < 40) what = what.substr(dot + 2);
      }
      if (what.find("can't allocate memory") != std::string::npos)
        what += "; make the model, batch or context smaller, or free memory";
      throw std::runtime_error(what);
    } catch (const std::bad_alloc&) {
      throw std::runtime_error("out of memory: make the model, batch or data smaller, or free memory");
    }
  };
}

}  // namespace

int main(int argc, char** argv) {
  ensure_passive_openmp(argv);
  keep_freed_memory();
  std::map<std::string, cli::Handler> handlers = i3::model_handlers();
  handlers.merge(i3::train_handlers());
  handlers.merge(i3::bench_handlers());
  std::vector<cli::Command> commands = i3::model_catalog();
  for (cli::Command& c : commands) {
    auto it = handlers.find(c.path);
    if (it == handlers.end()) {
      std::cerr << "i3lab-model: no handler for '" << c.path << "' (a bug: catalog.cc and the handlers disagree)\n";
      return 70;
    }
    c.run = one_line_errors(it->second);
    handlers.erase(it);
  }
  if (!handlers.empty()) {
    std::cerr << "i3lab-model: '" << handlers.begin()->first << "' has a handler but no catalog entry (a bug)\n";
    return 70;
  }
  return cli::dispatch(commands, argc, argv);
}
