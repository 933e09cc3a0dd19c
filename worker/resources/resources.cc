#include "worker/resources/resources.h"

#include <dlfcn.h>
#include <unistd.h>

#include <thread>

#include "common/util/addresses.h"

namespace resources {
namespace {

// The few NVML entry points used, by their documented C signatures.
using NvmlInit = int (*)();
using NvmlShutdown = int (*)();
using NvmlCount = int (*)(unsigned*);
using NvmlHandle = int (*)(unsigned, void**);
using NvmlName = int (*)(void*, char*, unsigned);
struct NvmlMemory {
  unsigned long long total, free, used;
};
using NvmlMem = int (*)(void*, NvmlMemory*);

}  // namespace

std::vector<Gpu> detect_gpus() {
  std::vector<Gpu> out;
  void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (!lib) return out;
  auto init = reinterpret_cast<NvmlInit>(dlsym(lib, "nvmlInit_v2"));
  auto shutdown = reinterpret_cast<NvmlShutdown>(dlsym(lib, "nvmlShutdown"));
  auto count = reinterpret_cast<NvmlCount>(dlsym(lib, "nvmlDeviceGetCount_v2"));
  auto handle = reinterpret_cast<NvmlHandle>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
  auto name = reinterpret_cast<NvmlName>(dlsym(lib, "nvmlDeviceGetName"));
  auto mem = reinterpret_cast<NvmlMem>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
  unsigned n = 0;
  if (init && shutdown && count && handle && name && mem && init() == 0) {
    if (count(&n) == 0) {
      for (unsigned i = 0; i < n; ++i) {
        void* h = nullptr;
        if (handle(i, &h) != 0) continue;
        Gpu g;
        g.index = static_cast<int>(i);
        char buf[96] = {};
        if (name(h, buf, sizeof buf - 1) == 0) g.name = buf;
        NvmlMemory m{};
        if (mem(h, &m) == 0) g.memory_mb = static_cast<int64_t>(m.total >> 20);
        out.push_back(g);
      }
    }
    shutdown();
  }
  dlclose(lib);
  return out;
}

std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "localhost";
  return buf;
}

nlohmann::json describe(const Offer& offer) {
  nlohmann::json r;
  r["cpu_slots"] = offer.cpu_slots > 0 ? offer.cpu_slots : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int64_t pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  r["memory_mb"] = offer.memory_mb > 0 ? offer.memory_mb : (pages > 0 && page > 0 ? pages * page / (1 << 20) : 0);
  const std::vector<Gpu> seen = detect_gpus();
  nlohmann::json gpus = nlohmann::json::array();
  auto add = [&](const Gpu& g) { gpus.push_back({{"index", g.index}, {"name", g.name}, {"memory_mb", g.memory_mb}}); };
  if (!offer.gpus) {
    for (const Gpu& g : seen) add(g);
  } else {
    for (int i : *offer.gpus) {
      Gpu g{i, "unknown", 0};
      for (const Gpu& s : seen)
        if (s.index == i) g = s;
      add(g);
    }
  }
  r["gpus"] = gpus;
  r["labels"] = offer.labels;
  r["ports"] = {offer.port_lo, offer.port_hi};
  // Without --address: the host name, if it resolves here (if not, it will not elsewhere
  // either: a container or chroot without /etc/hosts), else the first outward address.
  std::string address = offer.address;
  if (address.empty()) address = util::resolves(host_name()) ? host_name() : util::first_outward_address();
  if (address.empty()) address = "127.0.0.1";
  r["address"] = address;
  return r;
}

}  // namespace resources
