#include "coordinator/sweep/asha.h"

#include <cmath>

namespace sweep {

int64_t rung_step(const EarlyTerminate& e, size_t k) {
  if (!e.enabled || e.min_steps <= 0) return 0;
  int64_t step = e.min_steps;
  for (size_t i = 0; i < k; ++i) {
    if (step > INT64_MAX / e.eta) return 0;
    step *= e.eta;
  }
  if (e.max_steps > 0 && step >= e.max_steps) return 0;
  return step;
}

bool asha_continues(const std::vector<double>& others, double value, int eta, bool maximize) {
  const auto better = [&](double a, double b) {  // a strictly better than b
    if (std::isnan(a)) return false;
    if (std::isnan(b)) return true;
    return maximize ? a > b : a < b;
  };
  size_t ahead = 0;
  for (double v : others) ahead += better(v, value);
  const size_t n = others.size() + 1;
  const size_t keep = (n + static_cast<size_t>(eta) - 1) / static_cast<size_t>(eta);
  return ahead < keep;
}

}  // namespace sweep
