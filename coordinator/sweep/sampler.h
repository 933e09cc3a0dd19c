// Where a sweep's next trial goes: grid, random or TPE, as pure functions of the sweep, the
// trial's draw number and (TPE) the trials so far. The same arguments give the same point on
// every run, so a restarted coordinator draws what it would have drawn.
//
// A point is {path: value} (e.g. {"optim.lr": 0.002, "model.d_model": 128}), values typed as
// the distribution says: int_uniform gives integers, q_* give integers when q is a whole
// number, categorical and constant give the values as written.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <vector>

#include "coordinator/sweep/sweep_spec.h"

namespace sweep {

// Optuna's TPE defaults (optuna.samplers.TPESampler).
constexpr int kTpeStartupTrials = 10;  // random draws before the model is used
constexpr int kTpeCandidates = 24;     // draws from l(x) scored by l(x) / g(x)

// A trial as the samplers see it.
struct Observation {
  nlohmann::json point;
  // kStopped: ended early (ASHA): its value is from an earlier step than a finished trial's.
  enum class State { kRunning, kDone, kStopped, kFailed } state = State::kRunning;
  std::optional<double> value;  // the metric's latest value, if it reported one
  int64_t step = 0;             // the step of `value`
};

// Grid point `index` in [0, grid_size(spec)): the first parameter varies slowest.
nlohmann::json grid_point(const SweepSpec& spec, uint64_t index);

// Draw `index` from the parameters' distributions with the sweep's seed.
nlohmann::json random_point(const SweepSpec& spec, uint64_t index);

// TPE (Bergstra et al. 2011, as Optuna's univariate sampler): the finished trials split into the
// best gamma(n) = min(ceil(0.1 n), 25) and the rest (trials stopped early rank after those that
// finished, the later-stopped first, as Optuna ranks pruned trials: a loss from an earlier step
// is not comparable), a Parzen estimator l(x) over the first and
// g(x) over the second, per parameter; of kTpeCandidates draws from l the one with the highest
// l(x) / g(x) wins. Trials still running count as the worst value seen (a constant liar), so
// parallel workers are steered away from points already being tried. Failed trials count as
// spec.metric.impute says. Before kTpeStartupTrials trials have ended: random_point.
nlohmann::json tpe_point(const SweepSpec& spec, uint64_t index, const std::vector<Observation>& trials);

// The method's choice: grid_point, random_point or tpe_point.
nlohmann::json next_point(const SweepSpec& spec, uint64_t index, const std::vector<Observation>& trials);

}  // namespace sweep
