#include "model/data/samplers.h"

#include <algorithm>
#include <stdexcept>
#include <string>

namespace i3 {

RandomWindows::RandomWindows(const TokenCache& cache, const std::vector<DataSource>& sources, int64_t window, uint64_t seed)
    : window_(window), seed_(seed), rng_(seed) {
  const bool weighted = std::any_of(sources.begin(), sources.end(), [](const DataSource& s) { return s.weight > 0; });
  double total = 0;
  if (!weighted) {
    // The published recipe: one stream of every source's training tokens, in order.
    const TokenSpan all{cache.train().front().begin, cache.train().back().end};
    if (all.end - all.begin >= window) spans_.push_back(all), cumulative_.push_back(total = 1);
  } else {
    for (size_t i = 0; i < sources.size(); ++i) {
      const TokenSpan& span = cache.train()[i];
      if (span.end - span.begin < window || sources[i].weight <= 0) continue;
      spans_.push_back(span);
      cumulative_.push_back(total += sources[i].weight);
    }
  }
  if (spans_.empty())
    throw std::runtime_error("no source has " + std::to_string(window) + " training tokens (one window): more data or a shorter context");
  for (double& c : cumulative_) c /= total;
}

int64_t RandomWindows::next() {
  // Always two draws per window, so restore() can skip ahead exactly.
  const double pick = static_cast<double>(rng_() >> 11) * 0x1.0p-53;
  const uint64_t offset = rng_();
  size_t s = std::upper_bound(cumulative_.begin(), cumulative_.end(), pick) - cumulative_.begin();
  s = std::min(s, spans_.size() - 1);
  const uint64_t positions = static_cast<uint64_t>(spans_[s].end - spans_[s].begin - window_ + 1);
  ++draws_;
  return spans_[s].begin + static_cast<int64_t>(offset % positions);
}

void RandomWindows::restore(uint64_t draws) {
  rng_.seed(seed_);
  rng_.discard(2 * draws);
  draws_ = draws;
}

EpochWindows::EpochWindows(const TokenCache& cache, int64_t window, uint64_t seed) : seed_(seed) {
  const int64_t begin = cache.train().front().begin, end = cache.train().back().end;
  for (int64_t start = begin; start + window <= end; start += window) starts_.push_back(start);
  if (starts_.empty()) throw std::runtime_error("not enough training tokens for one window of " + std::to_string(window));
  shuffle();
}

void EpochWindows::shuffle() {
  order_ = starts_;
  std::mt19937_64 rng(seed_ ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(epoch_ + 1)));
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng() % i]);  // Fisher–Yates
}

int64_t EpochWindows::next() {
  if (position_ == static_cast<int64_t>(order_.size())) {
    ++epoch_;
    position_ = 0;
    shuffle();
  }
  return order_[position_++];
}

void EpochWindows::restore(int64_t epoch, int64_t position) {
  epoch_ = epoch;
  position_ = position;
  shuffle();
}

}  // namespace i3
