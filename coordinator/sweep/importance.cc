#include "coordinator/sweep/importance.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <random>

namespace sweep {
namespace {

using nlohmann::json;

constexpr int kTrees = 64;
constexpr int kMaxDepth = 4;
constexpr int kThresholds = 8;  // random candidates per parameter and split

// A parameter's value as a number: logs for the log distributions, the category's index
// otherwise; NaN if the point lacks it.
double feature(const Parameter& p, const json& point) {
  const auto it = point.find(p.path);
  if (it == point.end()) return NAN;
  if (p.distribution == Distribution::kCategorical || p.distribution == Distribution::kConstant) {
    for (size_t i = 0; i < p.values.size(); ++i)
      if (p.values[i] == *it) return static_cast<double>(i);
    return NAN;
  }
  if (!it->is_number()) return NAN;
  const double v = it->get<double>();
  const bool log = p.distribution == Distribution::kLogUniformValues || p.distribution == Distribution::kQLogUniformValues ||
                   p.distribution == Distribution::kLogNormal;
  return log ? (v > 0 ? std::log(v) : NAN) : v;
}

std::optional<double> pearson(const std::vector<double>& x, const std::vector<double>& y) {
  const double n = static_cast<double>(x.size());
  const double mx = std::accumulate(x.begin(), x.end(), 0.0) / n, my = std::accumulate(y.begin(), y.end(), 0.0) / n;
  double sxy = 0, sxx = 0, syy = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) * (x[i] - mx);
    syy += (y[i] - my) * (y[i] - my);
  }
  if (sxx <= 0 || syy <= 0) return std::nullopt;
  return sxy / std::sqrt(sxx * syy);
}

double variance_sum(const std::vector<double>& y, const std::vector<size_t>& rows) {  // n · variance
  double mean = 0;
  for (size_t r : rows) mean += y[r];
  mean /= rows.size();
  double s = 0;
  for (size_t r : rows) s += (y[r] - mean) * (y[r] - mean);
  return s;
}

// Grows one tree over `rows`, adding each split's variance reduction to gain[feature].
void grow(const std::vector<std::vector<double>>& x, const std::vector<double>& y, const std::vector<size_t>& rows, int depth,
          std::mt19937_64& rng, std::vector<double>& gain) {
  if (depth >= kMaxDepth || rows.size() < 4) return;
  const double parent = variance_sum(y, rows);
  if (parent <= 0) return;
  double best = 0;
  size_t best_f = 0;
  double best_t = 0;
  for (size_t f = 0; f < x.size(); ++f) {
    double lo = INFINITY, hi = -INFINITY;
    for (size_t r : rows) lo = std::min(lo, x[f][r]), hi = std::max(hi, x[f][r]);
    if (!(hi > lo)) continue;
    std::uniform_real_distribution<double> pick(lo, hi);
    for (int k = 0; k < kThresholds; ++k) {
      const double t = pick(rng);
      std::vector<size_t> left, right;
      for (size_t r : rows) (x[f][r] <= t ? left : right).push_back(r);
      if (left.empty() || right.empty()) continue;
      const double reduction = parent - variance_sum(y, left) - variance_sum(y, right);
      if (reduction > best) best = reduction, best_f = f, best_t = t;
    }
  }
  if (best <= 0) return;
  gain[best_f] += best;
  std::vector<size_t> left, right;
  for (size_t r : rows) (x[best_f][r] <= best_t ? left : right).push_back(r);
  grow(x, y, left, depth + 1, rng, gain);
  grow(x, y, right, depth + 1, rng, gain);
}

}  // namespace

std::vector<ParameterImportance> parameter_importance(const SweepSpec& spec, const std::vector<json>& points,
                                                      const std::vector<double>& values) {
  std::vector<ParameterImportance> out;
  for (const Parameter& p : spec.parameters) out.push_back({p.path, std::nullopt, std::nullopt});
  // The trials with a metric and every parameter.
  std::vector<std::vector<double>> x(spec.parameters.size());
  std::vector<double> y;
  for (size_t i = 0; i < points.size() && i < values.size(); ++i) {
    if (!std::isfinite(values[i])) continue;
    std::vector<double> row;
    for (const Parameter& p : spec.parameters) row.push_back(feature(p, points[i]));
    if (std::any_of(row.begin(), row.end(), [](double v) { return std::isnan(v); })) continue;
    for (size_t f = 0; f < row.size(); ++f) x[f].push_back(row[f]);
    y.push_back(values[i]);
  }
  if (y.size() < 3) return out;
  for (size_t f = 0; f < spec.parameters.size(); ++f) {
    const Parameter& p = spec.parameters[f];
    std::vector<double> column = x[f];
    if (p.distribution == Distribution::kCategorical) {  // each category as its mean metric
      std::map<double, std::pair<double, int>> sums;
      for (size_t i = 0; i < y.size(); ++i) sums[column[i]].first += y[i], sums[column[i]].second += 1;
      for (double& c : column) c = sums[c].first / sums[c].second;
    }
    out[f].correlation = pearson(column, y);
  }
  std::vector<double> gain(spec.parameters.size(), 0.0);
  std::mt19937_64 rng(spec.seed ^ 0x5eedf0e57ULL);
  std::uniform_int_distribution<size_t> draw(0, y.size() - 1);
  for (int t = 0; t < kTrees; ++t) {
    std::vector<size_t> rows(y.size());
    for (size_t& r : rows) r = draw(rng);
    grow(x, y, rows, 0, rng, gain);
  }
  const double total = std::accumulate(gain.begin(), gain.end(), 0.0);
  for (size_t f = 0; f < gain.size(); ++f) out[f].importance = total > 0 ? gain[f] / total : 0.0;
  return out;
}

}  // namespace sweep
