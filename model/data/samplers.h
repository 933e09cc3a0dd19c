// Training windows drawn from a token cache: the order in which training sees the data.
// Both samplers are seeded and resumable, so a checkpoint can record where they are.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "model/data/token_cache.h"

namespace i3 {

// Start offsets of training windows of `window` tokens (context + 1 tokens give inputs and
// shifted targets), drawn as the published recipe does: uniformly, with replacement, from the
// sources by weight. Seeded and resumable: the draw sequence depends only on (seed, draws so far).
class RandomWindows {
 public:
  RandomWindows(const TokenCache& cache, const std::vector<DataSource>& sources, int64_t window, uint64_t seed);
  int64_t next();
  uint64_t draws() const { return draws_; }
  // Continues as if `draws` windows had been drawn already.
  void restore(uint64_t draws);

 private:
  std::vector<TokenSpan> spans_;  // sources that hold at least one window
  std::vector<double> cumulative_;
  int64_t window_;
  uint64_t seed_, draws_ = 0;
  std::mt19937_64 rng_;
};

// Non-overlapping windows visited in a new random order each epoch, without replacement.
// Resumable from (epoch, position).
class EpochWindows {
 public:
  EpochWindows(const TokenCache& cache, int64_t window, uint64_t seed);
  int64_t next();
  int64_t epoch() const { return epoch_; }
  int64_t position() const { return position_; }
  void restore(int64_t epoch, int64_t position);
  int64_t windows_per_epoch() const { return static_cast<int64_t>(starts_.size()); }

 private:
  void shuffle();
  std::vector<int64_t> starts_, order_;
  uint64_t seed_;
  int64_t epoch_ = 0, position_ = 0;
};

}  // namespace i3
