// How much each parameter of a sweep matters for its metric, from the trials that reported it,
// as W&B's sweep page shows it: a correlation, and an importance from a random forest.
//
//   correlation  Pearson's r between the parameter and the metric, over the trials. Log
//                distributions are taken as logs; a categorical parameter as the mean metric of
//                its category (so r says how much knowing the category tells).
//   importance   the parameter's share of the variance reduction in a forest of 64 regression
//                trees (each grown on a bootstrap sample of the trials, splits chosen among a few
//                random thresholds per parameter, depth at most 4); the shares sum to 1.
// Deterministic for the same trials. Fewer than 3 trials with a finite metric: nulls.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/sweep/sweep_spec.h"

namespace sweep {

struct ParameterImportance {
  std::string path;
  std::optional<double> correlation, importance;
};

// `points[i]` is trial i's {path: value}, `values[i]` its metric (NaN: none).
std::vector<ParameterImportance> parameter_importance(const SweepSpec& spec, const std::vector<nlohmann::json>& points,
                                                      const std::vector<double>& values);

}  // namespace sweep
