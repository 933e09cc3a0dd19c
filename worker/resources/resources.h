// What a worker offers: the `resources` object of its HELLO (protocol.h).
//
//   {"cpu_slots": 2, "memory_mb": 24000,
//    "gpus": [{"index": 0, "name": "NVIDIA H100 80GB HBM3", "memory_mb": 81559}],
//    "labels": {"zone": "a"}, "ports": [29500, 29999], "address": "node17"}
//
// GPUs come from NVML (libnvidia-ml.so.1, loaded with dlopen when present); a machine
// without it is a CPU-only worker, which is normal. `ports` is the range from which the
// coordinator picks a multi-rank job's MASTER_PORT when rank 0 runs here; `address` is how
// other machines reach this one (the host name unless told otherwise).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace resources {

struct Gpu {
  int index = 0;
  std::string name;
  int64_t memory_mb = 0;
};

// The GPUs NVML sees; empty without NVML or without GPUs.
std::vector<Gpu> detect_gpus();

struct Offer {
  int cpu_slots = 0;      // 0: the number of CPUs
  int64_t memory_mb = 0;  // 0: physical memory
  std::optional<std::vector<int>> gpus;  // indexes to offer; none: every GPU NVML sees
  std::map<std::string, std::string> labels;
  int port_lo = 29500, port_hi = 29999;
  std::string address;    // "": the host name
};

std::string host_name();

// The HELLO `resources` object for `offer`. An index in offer.gpus that NVML does not know is
// offered as it is (name "unknown"), so a machine without NVML can still hand out GPUs.
nlohmann::json describe(const Offer& offer);

}  // namespace resources
