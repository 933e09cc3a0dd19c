// The optimiser's settings as plain data (no LibTorch): what a training config and a sweep
// over it set. model/optim/optimizer.h applies them.
#pragma once

#include <cstdint>

namespace i3 {

// lr(it) = peak·(it+1)/warmup                          for it < warmup
//        = peak·(floor + (1−floor)·½·(1 + cos(π·r)))   after, r = (it − warmup)/(max_iters − warmup)
// The published recipe: peak 3e-4, warmup 100, max_iters 5000, floor 0.1. Past max_iters the
// rate stays at the floor.
struct LrSchedule {
  double peak = 3e-4;
  int64_t warmup = 100;
  int64_t max_iters = 5000;
  double floor = 0.1;
  double at(int64_t it) const;
};

struct AdamWOptions {
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.01;
  // The published recipe decays every parameter. false: no decay for biases, LayerNorm
  // weights, embeddings and the hybrid layers' mixing vectors (1-D or embedding tensors).
  bool decay_all = true;
};

}  // namespace i3
