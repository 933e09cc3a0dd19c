#include "coordinator/scheduler/placement.h"

#include <algorithm>

namespace scheduler {

bool Node::fits(const jobs::Resources& r) const {
  if (used_slots + r.cpu_slots > capacity.cpu_slots) return false;
  if (capacity.memory_mb > 0 && used_memory_mb + r.memory_mb > capacity.memory_mb) return false;
  if (static_cast<int>(capacity.gpus.size() - used_gpus.size()) < r.gpus) return false;
  for (const auto& [k, v] : r.labels) {
    const auto it = capacity.labels.find(k);
    if (it == capacity.labels.end() || it->second != v) return false;
  }
  return true;
}

std::vector<int> Node::take(const jobs::Resources& r) {
  used_slots += r.cpu_slots;
  used_memory_mb += r.memory_mb;
  std::vector<int> taken;
  for (int g : capacity.gpus) {
    if (static_cast<int>(taken.size()) == r.gpus) break;
    if (!used_gpus.count(g)) taken.push_back(g);
  }
  used_gpus.insert(taken.begin(), taken.end());
  return taken;
}

void Node::hold(const jobs::Resources& r, const std::vector<int>& gpus) {
  used_slots += r.cpu_slots;
  used_memory_mb += r.memory_mb;
  used_gpus.insert(gpus.begin(), gpus.end());
}

void Node::give_back(const jobs::Resources& r, const std::vector<int>& gpus) {
  used_slots = std::max(0, used_slots - r.cpu_slots);
  used_memory_mb = std::max<int64_t>(0, used_memory_mb - r.memory_mb);
  for (int g : gpus) used_gpus.erase(g);
}

std::optional<std::vector<RankPlacement>> place(const jobs::JobSpec& spec, std::vector<Node*> nodes) {
  std::vector<RankPlacement> out;
  std::vector<Node*> used;
  Node* last = nullptr;
  for (int rank = 0; rank < spec.ranks; ++rank) {
    Node* pick = last && last->fits(spec.resources) ? last : nullptr;
    if (!pick) {
      for (Node* n : nodes)
        if (n->fits(spec.resources) && (!pick || n->capacity.cpu_slots - n->used_slots > pick->capacity.cpu_slots - pick->used_slots))
          pick = n;
    }
    if (!pick) {
      // All or nothing: give back what the earlier ranks took.
      for (size_t i = 0; i < out.size(); ++i) used[i]->give_back(spec.resources, out[i].gpus);
      return std::nullopt;
    }
    out.push_back({pick->id, pick->take(spec.resources)});
    used.push_back(pick);
    last = pick;
  }
  return out;
}

bool could_ever_fit(const jobs::JobSpec& spec, const std::vector<const Node*>& nodes) {
  std::vector<Node> idle;
  for (const Node* n : nodes) idle.push_back(Node{n->id, n->capacity});
  std::vector<Node*> ptrs;
  for (Node& n : idle) ptrs.push_back(&n);
  return place(spec, ptrs).has_value();
}

}  // namespace scheduler
