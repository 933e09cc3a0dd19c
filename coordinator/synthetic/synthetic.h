// The synthetic job: a fast stand-in for training with a known answer, for testing and
// benchmarking sweeps without a model. It logs `loss` at every step, a noisy function of its
// parameters that improves with steps:
//
//   loss(step) = (x - 0.3)^2 + (y + 0.2)^2 + 0.1 (log10 lr + 3)^2 + 0.01 (n - 4)^2
//                + penalty(choice) + 1 / sqrt(step) + noise · N(0, 1)
//
// penalty(choice) is 0 for "a", 0.1 for "b" and 0.2 for anything else. The noise-free part
// is 0 at x = 0.3, y = -0.2, lr = 1e-3, n = 4, choice = "a" and step → ∞: the known optimum
// a sweep should find. A trial's rank among others stays the same from step to step (but for
// the noise), which is what ASHA's early decisions rely on.
//
// As a job: {"kind": "synthetic", "config": {"x": 0.1, "steps": 200}}; on the command line:
// `i3lab job synthetic --set x=0.1 --set steps=200 [--db FILE]`. Config keys (defaults):
//   x, y (0.0)   lr (0.001)   n (4)   choice ("a")    the parameters
//   steps (100)          steps to run
//   step_ms (10)         sleep per step, standing in for the work of a training step
//   noise (0.01)         the noise's standard deviation (0: deterministic)
//   seed (0)             the noise's seed
//   fail_if_exists ("")  exit with code 1 at step 1 while this file exists (a flaky trial)
//   project ("synthetic"), name (""), group ("")   the tracked run's
// Any other key is an error naming it, so a sweep's parameter path cannot be silently unused.
#pragma once

#include <atomic>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace synthetic {

struct Config {
  double x = 0, y = 0, lr = 1e-3;
  int64_t n = 4;
  std::string choice = "a";
  int64_t steps = 100;
  double step_ms = 10;
  double noise = 0.01;
  int64_t seed = 0;
  std::string fail_if_exists;
  std::string project = "synthetic", name, group;
};

// Reads a config object over the defaults; `overrides` are "key=value" (value as JSON, else a
// string). Throws std::invalid_argument naming `origin` and the key.
Config parse_config(const nlohmann::json& j, const std::string& origin, const std::vector<std::string>& overrides = {});
nlohmann::json to_json(const Config& c);
// Every key with its default: a sweep's parameter paths are checked against these.
const nlohmann::json& default_config();

// The noise-free loss at `step` (>= 1).
double objective(const Config& c, int64_t step);

struct Result {
  int64_t run_id = 0;
  std::string status;  // finished | stopped
  int64_t step = 0;
  double loss = 0;
};

// Runs the job into the tracker database `db_path`: creates a run (its config: to_json(c)),
// logs {"loss"} at steps 1..steps, and finishes it. Stops after the current step once `stop`
// is set (status "stopped"). Throws std::runtime_error for fail_if_exists.
Result run(const Config& c, const std::string& db_path, const std::atomic<bool>& stop);

}  // namespace synthetic
