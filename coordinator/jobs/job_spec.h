// What a job is: the JSON a user submits and the coordinator stores, places and hands to a
// worker.
//
//   {"kind": "command", "argv": ["sleep", "5"], "resources": {"cpu_slots": 1}}
//   {"kind": "train", "config": {...a training config (docs/training.md)...}}
//   {"kind": "eval", "args": ["--model", "artifact:ckpt-1a2b3c4d:best", "--data", "val.txt"]}
//   {"kind": "synthetic", "config": {"x": 0.1}}   (coordinator/synthetic/synthetic.h)
//
// Keys (every one optional except those of the kind; anything else is an error naming it):
//   kind           "command" | "train" | "eval" | "synthetic"
//   argv           command: the program and its arguments (argv[0] is looked up in PATH)
//   config         train: the training config, an object; synthetic: its config ({} if absent)
//   args           eval: the flags of `i3lab eval` (without --db: the worker gives it)
//   name           for people ("" : the kind and the id)
//   env            {NAME: value} added to the job's environment
//   resources      per rank: {"gpus": N, "cpu_slots": N (default 1), "memory_mb": N,
//                  "labels": {k: v} that the worker must carry}
//   distributed    {"ranks": R}: R processes placed all-or-nothing (default 1)
//   priority       higher first (default 0); equal priorities run in submission order
//   max_restarts   attempts after the first that may fail before the job fails (default 5)
//   timeout_s      the job fails once an attempt has run this long (0: never)
//   cancel_grace_s SIGTERM → SIGKILL after this long when cancelled (default 10)
// A job sees I3LAB_JOB_ID and I3LAB_ATTEMPT in its environment, and CUDA_VISIBLE_DEVICES
// naming the GPUs it was given ("" for none).
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace jobs {

// Limits on one job (a spec is stored and sent whole).
constexpr size_t kMaxSpecBytes = 1u << 20;
constexpr int kMaxRanks = 1024;
constexpr int kMaxRestarts = 100;

// A job spec that cannot run: names the field and what is wrong.
struct SpecError : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

struct Resources {
  int gpus = 0;
  int cpu_slots = 1;
  int64_t memory_mb = 0;
  std::map<std::string, std::string> labels;
};

struct JobSpec {
  std::string kind;               // command | train | eval | synthetic
  std::vector<std::string> argv;  // command
  nlohmann::json config;          // train, synthetic
  std::vector<std::string> args;  // eval
  std::string name;
  std::map<std::string, std::string> env;
  Resources resources;  // per rank
  int ranks = 1;
  int priority = 0;
  int max_restarts = 5;
  double timeout_s = 0;
  double cancel_grace_s = 10;
};

// Reads and checks a spec. `origin` (a file name, "REQUEST submit") prefixes every error.
// Throws SpecError.
JobSpec parse_job_spec(const nlohmann::json& j, const std::string& origin);
// The inverse: every key, so a stored spec reads back the same.
nlohmann::json to_json(const JobSpec& spec);

// The job's name for tables: its own name, or "KIND" plus a word of what it runs.
std::string display_name(const JobSpec& spec);

// Job states (system.md: job lifecycle).
bool is_final_job_status(const std::string& status);  // succeeded failed cancelled early-stopped

}  // namespace jobs
