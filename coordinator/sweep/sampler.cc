#include "coordinator/sweep/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <tuple>

namespace sweep {
namespace {

using nlohmann::json;

// One generator per (sweep seed, draw, purpose): the same draw whatever came before it.
std::mt19937_64 generator(uint64_t seed, uint64_t index, uint32_t purpose) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(index),
                    static_cast<uint32_t>(index >> 32), purpose};
  return std::mt19937_64(seq);
}

bool whole(double q) { return std::floor(q) == q && std::abs(q) < 1e15; }

// round(x / q) * q, an integer when q is a whole number.
json quantize(double x, double q) {
  const double v = std::round(x / q) * q;
  if (whole(q)) return static_cast<int64_t>(std::llround(v));
  return v;
}

json draw(const Parameter& p, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> unit(0, 1);
  switch (p.distribution) {
    case Distribution::kConstant:
      return p.values.front();
    case Distribution::kCategorical: {
      if (p.probabilities.empty()) return p.values[std::uniform_int_distribution<size_t>(0, p.values.size() - 1)(rng)];
      std::discrete_distribution<size_t> pick(p.probabilities.begin(), p.probabilities.end());
      return p.values[pick(rng)];
    }
    case Distribution::kIntUniform:
      return std::uniform_int_distribution<int64_t>(static_cast<int64_t>(p.min), static_cast<int64_t>(p.max))(rng);
    case Distribution::kUniform:
      return p.min + (p.max - p.min) * unit(rng);
    case Distribution::kQUniform:
      return quantize(p.min + (p.max - p.min) * unit(rng), p.q);
    case Distribution::kLogUniformValues:
      return std::exp(std::log(p.min) + (std::log(p.max) - std::log(p.min)) * unit(rng));
    case Distribution::kQLogUniformValues:
      return quantize(std::exp(std::log(p.min) + (std::log(p.max) - std::log(p.min)) * unit(rng)), p.q);
    case Distribution::kNormal:
      return std::normal_distribution<double>(p.mu, p.sigma)(rng);
    case Distribution::kLogNormal:
      return std::exp(std::normal_distribution<double>(p.mu, p.sigma)(rng));
  }
  return nullptr;
}

// --- TPE -----------------------------------------------------------------------------------

// A parameter's search space as TPE models it: a finite interval of reals (logs for the log
// distributions, a continuous stand-in for integers), or category indexes.
struct Space {
  bool categorical = false;
  size_t categories = 0;
  double lo = 0, hi = 1;
  double prior_mu = 0.5, prior_sigma = 1;
};

Space space_of(const Parameter& p) {
  Space s;
  switch (p.distribution) {
    case Distribution::kConstant:
    case Distribution::kCategorical:
      s.categorical = true;
      s.categories = p.values.size();
      return s;
    case Distribution::kIntUniform:
      s.lo = p.min - 0.5, s.hi = p.max + 0.5;
      break;
    case Distribution::kUniform:
    case Distribution::kQUniform:
      s.lo = p.min, s.hi = p.max;
      break;
    case Distribution::kLogUniformValues:
    case Distribution::kQLogUniformValues:
      s.lo = std::log(p.min), s.hi = std::log(p.max);
      break;
    case Distribution::kNormal:
    case Distribution::kLogNormal:  // of the log
      s.lo = p.mu - 5 * p.sigma, s.hi = p.mu + 5 * p.sigma;
      s.prior_mu = p.mu, s.prior_sigma = p.sigma;
      return s;
  }
  s.prior_mu = (s.lo + s.hi) / 2;
  s.prior_sigma = s.hi - s.lo;
  return s;
}

// A point's value of `p` in its space; nullopt if it has none (an older sweep's trial).
std::optional<double> to_space(const Parameter& p, const json& point) {
  const auto it = point.find(p.path);
  if (it == point.end()) return std::nullopt;
  if (p.distribution == Distribution::kConstant || p.distribution == Distribution::kCategorical) {
    for (size_t i = 0; i < p.values.size(); ++i)
      if (p.values[i] == *it) return static_cast<double>(i);
    return std::nullopt;
  }
  if (!it->is_number()) return std::nullopt;
  const double v = it->get<double>();
  const bool log = p.distribution == Distribution::kLogUniformValues || p.distribution == Distribution::kQLogUniformValues ||
                   p.distribution == Distribution::kLogNormal;
  if (log) return v > 0 ? std::optional<double>(std::log(v)) : std::nullopt;
  return v;
}

json from_space(const Parameter& p, double x) {
  switch (p.distribution) {
    case Distribution::kConstant:
    case Distribution::kCategorical:
      return p.values[std::min(p.values.size() - 1, static_cast<size_t>(std::max(0.0, std::round(x))))];
    case Distribution::kIntUniform:
      return std::clamp<int64_t>(std::llround(x), static_cast<int64_t>(p.min), static_cast<int64_t>(p.max));
    case Distribution::kUniform:
    case Distribution::kNormal:
      return x;
    case Distribution::kQUniform:
      return quantize(x, p.q);
    case Distribution::kLogUniformValues:
    case Distribution::kLogNormal:
      return std::exp(x);
    case Distribution::kQLogUniformValues:
      return quantize(std::exp(x), p.q);
  }
  return nullptr;
}

// Optuna's default_weights: equal for up to 25 observations, then older ones fade in linearly.
std::vector<double> observation_weights(size_t n) {
  std::vector<double> w(n, 1.0);
  if (n < 25) return w;
  const size_t ramp = n - 25;
  for (size_t i = 0; i < ramp; ++i) w[i] = 1.0 / n + (1.0 - 1.0 / n) * (ramp > 1 ? static_cast<double>(i) / (ramp - 1) : 0.0);
  return w;
}

// A mixture of Gaussians truncated to [lo, hi], one per observation plus the prior's.
struct Parzen {
  std::vector<double> mu, sigma, weight;
  double lo = 0, hi = 1;

  Parzen(const std::vector<double>& xs, const Space& s) : lo(s.lo), hi(s.hi) {
    const std::vector<double> w = observation_weights(xs.size());
    std::vector<size_t> order(xs.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return xs[a] < xs[b]; });
    const double range = hi - lo;
    const double min_sigma = range / std::min(100.0, 1.0 + xs.size());  // Optuna's "magic clip"
    for (size_t k = 0; k < order.size(); ++k) {
      const double x = xs[order[k]];
      const double left = k == 0 ? lo : xs[order[k - 1]], right = k + 1 == order.size() ? hi : xs[order[k + 1]];
      mu.push_back(x);
      sigma.push_back(std::clamp(std::max(x - left, right - x), min_sigma, range));
      weight.push_back(w[order[k]]);
    }
    mu.push_back(s.prior_mu);
    sigma.push_back(s.prior_sigma);
    weight.push_back(1.0);  // the prior's weight
    double total = 0;
    for (double x : weight) total += x;
    for (double& x : weight) x /= total;
  }

  double sample(std::mt19937_64& rng) const {
    std::discrete_distribution<size_t> pick(weight.begin(), weight.end());
    const size_t k = pick(rng);
    std::normal_distribution<double> normal(mu[k], sigma[k]);
    for (int tries = 0; tries < 100; ++tries) {
      const double x = normal(rng);
      if (x >= lo && x <= hi) return x;
    }
    return std::uniform_real_distribution<double>(lo, hi)(rng);
  }

  double log_density(double x) const {
    static const double kLogSqrt2Pi = 0.5 * std::log(2 * M_PI);
    double best = -std::numeric_limits<double>::infinity();
    std::vector<double> terms;
    for (size_t k = 0; k < mu.size(); ++k) {
      const double z = (x - mu[k]) / sigma[k];
      const double mass = 0.5 * (std::erfc(-(hi - mu[k]) / (sigma[k] * M_SQRT2)) - std::erfc(-(lo - mu[k]) / (sigma[k] * M_SQRT2)));
      const double t = std::log(weight[k]) - 0.5 * z * z - kLogSqrt2Pi - std::log(sigma[k]) - std::log(std::max(mass, 1e-300));
      terms.push_back(t);
      best = std::max(best, t);
    }
    double sum = 0;
    for (double t : terms) sum += std::exp(t - best);
    return best + std::log(sum);
  }
};

// Category probabilities: weighted counts plus the prior's weight spread evenly.
std::vector<double> category_weights(const std::vector<double>& xs, size_t categories) {
  std::vector<double> p(categories, 1.0 / categories);
  const std::vector<double> w = observation_weights(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) p[static_cast<size_t>(xs[i])] += w[i];
  double total = 0;
  for (double x : p) total += x;
  for (double& x : p) x /= total;
  return p;
}

}  // namespace

json grid_point(const SweepSpec& spec, uint64_t index) {
  json point = json::object();
  std::vector<uint64_t> sizes;
  for (const Parameter& p : spec.parameters)
    sizes.push_back(p.distribution == Distribution::kIntUniform ? static_cast<uint64_t>(p.max - p.min) + 1 : p.values.size());
  for (size_t i = spec.parameters.size(); i-- > 0;) {  // the last parameter varies fastest
    const Parameter& p = spec.parameters[i];
    const uint64_t k = index % sizes[i];
    index /= sizes[i];
    point[p.path] = p.distribution == Distribution::kIntUniform ? json(static_cast<int64_t>(p.min) + static_cast<int64_t>(k)) : p.values[k];
  }
  return point;
}

json random_point(const SweepSpec& spec, uint64_t index) {
  std::mt19937_64 rng = generator(spec.seed, index, 1);
  json point = json::object();
  for (const Parameter& p : spec.parameters) point[p.path] = draw(p, rng);
  return point;
}

json tpe_point(const SweepSpec& spec, uint64_t index, const std::vector<Observation>& trials) {
  // Losses: lower is better; +inf stands for "worst".
  const double kWorst = std::numeric_limits<double>::infinity();
  double best_seen = kWorst;
  size_t ended = 0;
  std::vector<double> loss(trials.size(), kWorst);
  for (size_t i = 0; i < trials.size(); ++i) {
    const Observation& t = trials[i];
    if (t.value && std::isfinite(*t.value)) loss[i] = spec.metric.maximize ? -*t.value : *t.value;
    if (t.state != Observation::State::kRunning) ++ended;
    if (t.state == Observation::State::kDone && std::isfinite(loss[i])) best_seen = std::min(best_seen, loss[i]);
  }
  if (ended < static_cast<size_t>(kTpeStartupTrials)) return random_point(spec, index);
  for (size_t i = 0; i < trials.size(); ++i) {
    const Observation& t = trials[i];
    if (t.state == Observation::State::kRunning) loss[i] = kWorst;  // the constant liar
    else if (t.state == Observation::State::kFailed && spec.metric.impute == Impute::kWorst) loss[i] = kWorst;
    else if (t.state == Observation::State::kFailed && spec.metric.impute == Impute::kBest) loss[i] = best_seen;
    // kLatest: the failed trial's own latest value (worst if it reported none).
  }
  // The best gamma(n) trials (ties: the earlier trial) make l(x), the others g(x). Finished
  // trials rank by loss; then those stopped early, by how far they got, then by loss; then the
  // worst (running, and failed ones imputed worst).
  const size_t n = trials.size();
  const size_t n_below = std::min<size_t>(static_cast<size_t>(std::ceil(0.1 * n)), 25);
  std::vector<size_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = i;
  const auto rank = [&](size_t i) {
    const bool stopped = trials[i].state == Observation::State::kStopped && std::isfinite(loss[i]);
    return std::make_tuple(std::isfinite(loss[i]) ? (stopped ? 1 : 0) : 2, stopped ? -trials[i].step : 0, loss[i]);
  };
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return rank(a) < rank(b); });
  std::vector<bool> below(n, false);
  for (size_t k = 0; k < n_below; ++k) below[order[k]] = true;

  std::mt19937_64 rng = generator(spec.seed, index, 2);
  json point = json::object();
  for (const Parameter& p : spec.parameters) {
    std::vector<double> xs_below, xs_above;
    for (size_t i = 0; i < n; ++i)
      if (const std::optional<double> x = to_space(p, trials[i].point)) (below[i] ? xs_below : xs_above).push_back(*x);
    const Space s = space_of(p);
    double best_x = 0, best_score = -std::numeric_limits<double>::infinity();
    if (s.categorical) {
      const std::vector<double> l = category_weights(xs_below, s.categories), g = category_weights(xs_above, s.categories);
      std::discrete_distribution<size_t> pick(l.begin(), l.end());
      for (int c = 0; c < kTpeCandidates; ++c) {
        const size_t k = pick(rng);
        const double score = std::log(l[k]) - std::log(g[k]);
        if (score > best_score) best_score = score, best_x = static_cast<double>(k);
      }
    } else {
      const Parzen l(xs_below, s), g(xs_above, s);
      for (int c = 0; c < kTpeCandidates; ++c) {
        const double x = l.sample(rng);
        const double score = l.log_density(x) - g.log_density(x);
        if (score > best_score) best_score = score, best_x = x;
      }
    }
    point[p.path] = from_space(p, best_x);
  }
  return point;
}

json next_point(const SweepSpec& spec, uint64_t index, const std::vector<Observation>& trials) {
  switch (spec.method) {
    case Method::kGrid: return grid_point(spec, index);
    case Method::kRandom: return random_point(spec, index);
    case Method::kBayes: return tpe_point(spec, index, trials);
  }
  return random_point(spec, index);
}

}  // namespace sweep
