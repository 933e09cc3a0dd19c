// Placement: which workers can run a job's ranks now. Pure bookkeeping over the workers'
// advertised capacity and what their open leases hold; no I/O, no clock.
//
// A job asks, per rank, for GPUs, CPU slots, memory and labels (job_spec.h). All its ranks are
// placed at once or none is (gang placement, what multi-rank data-parallel jobs need). Ranks go
// to the worker with the most free CPU slots, and further ranks of the same job stay on a
// worker that already holds one while it fits (fewer hosts per job).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/jobs/job_spec.h"

namespace scheduler {

struct Capacity {
  int cpu_slots = 0;
  int64_t memory_mb = 0;  // 0: not reported (memory requests are then not checked)
  std::vector<int> gpus;  // GPU indexes
  std::map<std::string, std::string> labels;
};

// A worker's capacity and what is in use.
struct Node {
  std::string id;
  Capacity capacity;
  int used_slots = 0;
  int64_t used_memory_mb = 0;
  std::set<int> used_gpus;

  bool fits(const jobs::Resources& r) const;
  // REQUIRES: fits(r). Returns the GPU indexes taken (lowest free first).
  std::vector<int> take(const jobs::Resources& r);
  // Marks `r` with exactly these GPUs in use (a lease recovered from the database).
  void hold(const jobs::Resources& r, const std::vector<int>& gpus);
  void give_back(const jobs::Resources& r, const std::vector<int>& gpus);
};

struct RankPlacement {
  std::string worker;
  std::vector<int> gpus;
};

// Places `spec.ranks` ranks on `nodes` (only those given, e.g. the live ones), taking their
// resources, or returns nothing and changes nothing.
std::optional<std::vector<RankPlacement>> place(const jobs::JobSpec& spec, std::vector<Node*> nodes);

// Whether some set of `nodes`, all idle, could ever hold the job (else it would wait forever).
bool could_ever_fit(const jobs::JobSpec& spec, const std::vector<const Node*>& nodes);

}  // namespace scheduler
