#include "model/config/optim.h"

#include <algorithm>
#include <cmath>

namespace i3 {

double LrSchedule::at(int64_t it) const {
  if (it < warmup) return peak * static_cast<double>(it + 1) / static_cast<double>(warmup);
  const double span = static_cast<double>(std::max<int64_t>(max_iters - warmup, 1));
  const double r = std::min(1.0, static_cast<double>(it - warmup) / span);
  return peak * (floor + (1 - floor) * 0.5 * (1 + std::cos(M_PI * r)));
}

}  // namespace i3
