#include "model/dist/world.h"

#include <cstdlib>
#include <stdexcept>

#include "common/util/json.h"

namespace i3 {
namespace {

// The integer value of variable `name`, in [lo, hi].
long long integer(const char* name, const char* text, long long lo, long long hi) {
  const std::string s = text;
  size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(s, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (s.empty() || used != s.size() || v < lo || v > hi)
    throw std::invalid_argument(std::string("environment variable ") + name + "=\"" + util::cut(s) + "\" must be an integer in " +
                                std::to_string(lo) + ".." + std::to_string(hi));
  return v;
}

}  // namespace

std::string first_slurm_host(const std::string& nodelist) {
  // The first entry ends at a comma outside brackets; a bracket holds ranges "07-09" or
  // single numbers, of which the first gives the host.
  const size_t bracket = nodelist.find('[');
  const size_t comma = nodelist.find(',');
  if (nodelist.empty() || nodelist[0] == ',' || nodelist[0] == '[')
    throw std::invalid_argument("Slurm node list \"" + util::cut(nodelist) + "\" does not start with a host name");
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) return nodelist.substr(0, comma);
  const size_t close = nodelist.find(']', bracket);
  if (close == std::string::npos) throw std::invalid_argument("Slurm node list \"" + util::cut(nodelist) + "\" has an unclosed '['");
  const std::string inside = nodelist.substr(bracket + 1, close - bracket - 1);
  const std::string first = inside.substr(0, inside.find_first_of(",-"));
  if (first.empty() || first.find_first_not_of("0123456789") != std::string::npos)
    throw std::invalid_argument("Slurm node list \"" + util::cut(nodelist) + "\" has a range that does not start with a number");
  return nodelist.substr(0, bracket) + first + nodelist.substr(close + 1, nodelist.find(',', close) - close - 1);
}

World world_from_env(const std::function<const char*(const char*)>& given) {
  const auto get = given ? given : [](const char* name) -> const char* { return std::getenv(name); };
  World w;
  const char* size_var = nullptr;
  const char *rank = nullptr, *local = nullptr;
  if (get("WORLD_SIZE") || get("RANK")) {
    w.launcher = "torchrun";
    size_var = "WORLD_SIZE";
    rank = "RANK";
    local = "LOCAL_RANK";
  } else if (get("SLURM_STEP_ID") && get("SLURM_PROCID") && (get("SLURM_STEP_NUM_TASKS") || get("SLURM_NTASKS"))) {
    w.launcher = "slurm";
    size_var = get("SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
    rank = "SLURM_PROCID";
    local = "SLURM_LOCALID";
  } else {
    return w;
  }
  if (!get(size_var) || !get(rank))
    throw std::invalid_argument(std::string("environment variable ") + (get(size_var) ? rank : size_var) + " is not set, but " +
                                (get(size_var) ? size_var : rank) + " is: a data-parallel launcher sets both");
  w.size = static_cast<int>(integer(size_var, get(size_var), 1, 1 << 20));
  w.rank = static_cast<int>(integer(rank, get(rank), 0, w.size - 1));
  w.local_rank = get(local) ? static_cast<int>(integer(local, get(local), 0, 1 << 20)) : 0;
  if (!w.distributed()) return w;

  auto text = [&](const char* name) { return std::string(get(name) ? get(name) : ""); };
  if (w.launcher == "torchrun" && text("TORCHELASTIC_USE_AGENT_STORE") == "True") {
    w.agent_store = true;
    w.store_prefix = "/worker/attempt_" + (get("TORCHELASTIC_RESTART_COUNT") ? text("TORCHELASTIC_RESTART_COUNT") : "0");
  } else if (get("I3LAB_JOB_ID")) {
    w.store_prefix = "i3lab/job-" + text("I3LAB_JOB_ID") + "/attempt-" + text("I3LAB_ATTEMPT");
  } else if (w.launcher == "slurm") {
    w.store_prefix = "i3lab/slurm-" + text("SLURM_JOB_ID") + "." + text("SLURM_STEP_ID");
  } else {
    w.store_prefix = "i3lab";
  }

  if (const char* addr = get("MASTER_ADDR"); addr && *addr) {
    w.master_addr = addr;
  } else if (w.launcher == "slurm") {
    const char* list = get("SLURM_STEP_NODELIST") ? get("SLURM_STEP_NODELIST") : get("SLURM_JOB_NODELIST");
    if (!list) throw std::invalid_argument("neither MASTER_ADDR nor SLURM_STEP_NODELIST/SLURM_JOB_NODELIST is set: no master to meet at");
    w.master_addr = first_slurm_host(list);
  } else {
    throw std::invalid_argument("WORLD_SIZE is " + std::to_string(w.size) + " but MASTER_ADDR is not set: no master to meet at");
  }
  if (const char* port = get("MASTER_PORT"); port && *port) {
    w.master_port = static_cast<int>(integer("MASTER_PORT", port, 1, 65535));
  } else if (w.launcher == "slurm" && get("SLURM_JOB_ID")) {
    const auto job = static_cast<unsigned long long>(integer("SLURM_JOB_ID", get("SLURM_JOB_ID"), 0, 1LL << 62));
    const auto step = static_cast<unsigned long long>(integer("SLURM_STEP_ID", get("SLURM_STEP_ID"), 0, 1LL << 32));
    w.master_port = static_cast<int>(20000 + (job % 20000 * 16 + step) % 20000);
  } else {
    throw std::invalid_argument(w.launcher == "slurm" ? "neither MASTER_PORT nor SLURM_JOB_ID is set: no port to meet at"
                                                      : "WORLD_SIZE is " + std::to_string(w.size) + " but MASTER_PORT is not set");
  }
  return w;
}

}  // namespace i3
