// Early termination by ASHA (Li et al. 2020, "A System for Massively Parallel Hyperparameter
// Tuning"), in its stopping form: a trial's metric is recorded at each rung it reaches, at
// steps min_steps · eta^k (below max_steps, when that is set), and judged then, against the
// values other trials recorded at the same rung so far. No trial waits for a rung to fill.
//
// A trial goes on from a rung when it is among the top ceil(n / eta) of the n values recorded
// there, its own included: the first trial at a rung always goes on, the second only if it is
// better than the first (with eta >= 2), and so on. The rest are stopped at once.
#pragma once

#include <cstdint>
#include <vector>

#include "coordinator/sweep/sweep_spec.h"

namespace sweep {

// The step of rung k (0, 1, …), or 0 when there is no such rung (at or past max_steps, or
// beyond int64).
int64_t rung_step(const EarlyTerminate& e, size_t k);

// Whether a trial that recorded `value` at a rung goes on, given the values `others` recorded
// there before it. NaN counts as the worst value.
bool asha_continues(const std::vector<double>& others, double value, int eta, bool maximize);

}  // namespace sweep
