// `i3lab worker`: flags in, one Worker, served until SIGINT or SIGTERM.
#include "worker/cli/commands.h"

#include <atomic>
#include <sstream>

#include "common/util/json.h"
#include "worker/agent/worker.h"

namespace worker {
namespace {

using cli::Args;
using cli::UsageError;


// --- worker ------------------------------------------------------------------------------------

int worker_cmd(const Args& args) {
  Options options;
  options.coordinator = args.require("coordinator");
  options.name = args.get("name", "");
  options.workdir = args.get("workdir", "i3lab-worker");
  options.offer.cpu_slots = static_cast<int>(args.get_int("slots", 0, 1, 1 << 20));
  options.offer.memory_mb = args.get_int("memory-mb", 0, 1, int64_t{1} << 40);
  options.offer.address = args.get("address", "");
  if (args.has("gpus")) {
    const std::string list = args.get("gpus");
    std::vector<int> gpus;
    if (list != "none" && !list.empty())
      for (long long g : cli::parse_int_list(list, "--gpus")) {
        if (g < 0 || g > 1023) throw UsageError("--gpus: GPU index " + std::to_string(g) + " is outside 0..1023");
        gpus.push_back(static_cast<int>(g));
      }
    options.offer.gpus = gpus;
  }
  if (args.has("labels")) {
    std::stringstream items(args.get("labels"));
    std::string item;
    while (std::getline(items, item, ',')) {
      const size_t eq = item.find('=');
      if (eq == std::string::npos || eq == 0) throw UsageError("--labels: '" + util::cut(item, 40) + "' is not key=value");
      options.offer.labels[item.substr(0, eq)] = item.substr(eq + 1);
    }
  }
  if (args.has("key") != args.has("coordinator-key"))
    throw UsageError("--key and --coordinator-key go together (CURVE keys: see i3lab keygen)");
  if (args.has("key"))
    options.keys = keys::ClientKeys{keys::read_key_file(args.get("key")), keys::public_key_from(args.get("coordinator-key"))};
  else
    options.keys = keys::client_keys_from_environment();
  Worker w(options);
  w.serve(cli::stop_on_signals());
  return 0;
}

}  // namespace

std::vector<cli::Command> worker_commands() {
  return {
      {"worker", "run a worker that takes jobs from a coordinator",
       "usage: i3lab worker --coordinator ENDPOINT [--gpus LIST|none] [--slots N] [--memory-mb N]\n"
       "                    [--labels k=v,...] [--workdir DIR] [--name NAME] [--address HOST]\n"
       "                    [--key FILE --coordinator-key KEY|FILE]\n"
       "Runs the jobs the coordinator assigns, each as a child process in DIR/job-ID (default\n"
       "DIR i3lab-worker). --slots: CPU slots offered (default: the CPUs); --gpus: GPU indexes offered\n"
       "(default: every GPU NVML sees); --address: how other machines reach this one (multi-rank jobs;\n"
       "default: the host name, or the first outward address where that name does not resolve).\n"
       "--key: this worker's key file and --coordinator-key the coordinator's public key, for a\n"
       "coordinator with CURVE keys (i3lab keygen; default: I3LAB_KEY and I3LAB_COORDINATOR_KEY).\n"
       "SIGINT or SIGTERM: says BYE (its jobs go back to the queue), stops its jobs and exits.\n",
       {{"coordinator", "gpus", "slots", "memory-mb", "labels", "workdir", "name", "address", "key", "coordinator-key"}, {}},
       worker_cmd},
  };
}

}  // namespace worker
