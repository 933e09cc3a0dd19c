// Optimisation for i3 training (spec: i3-model.md §5): AdamW over flat buffers and global-norm
// clipping. Its settings and the learning-rate schedule are plain data in model/config/optim.h.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

#include "model/config/optim.h"

namespace i3 {

// AdamW (decoupled weight decay, bias-corrected moments) whose parameters and gradients live in
// one contiguous buffer per decay group: the module's parameters become views into it, so
// autograd accumulates gradients there and the update is one fused pass over memory instead of
// ~8 passes per tensor. Same arithmetic as torch::optim::AdamW.
class FlatAdamW {
 public:
  // REQUIRES: every parameter of `params` is on one device and of one floating dtype.
  FlatAdamW(std::vector<std::pair<std::string, torch::Tensor>> named_params, AdamWOptions options);

  void zero_grad();
  // Scales all gradients so their global L2 norm is at most max_norm (when max_norm > 0);
  // returns the norm before clipping as a 0-dim float64 tensor on the parameters' device, so
  // that on an accelerator no step waits for the device to report it.
  torch::Tensor clip_grad_norm(double max_norm);
  // One update with learning rate `lr`.
  void step(double lr);

  int64_t steps_taken() const { return step_; }

  // Where each parameter lives, in the order given to the constructor: its group and offset in
  // that group's flat buffers. Data-parallel training (model/dist) averages gradients in
  // buckets that are contiguous slices of grad_buffer(group).
  struct Slot {
    torch::Tensor param;
    size_t group = 0;
    int64_t offset = 0, numel = 0;
  };
  const std::vector<Slot>& slots() const { return slots_; }
  size_t groups() const { return groups_.size(); }
  const torch::Tensor& grad_buffer(size_t group) const { return groups_[group].grads; }
  // Every flat buffer of state (parameters and both moments of each group): what rank 0
  // broadcasts so that every rank starts from the same point.
  std::vector<torch::Tensor> state_buffers() const;
  // Sets the update count (a rank that received the others' state from rank 0).
  void set_steps_taken(int64_t step) { step_ = step; }
  // Optimizer state for checkpoints: {"step", "exp_avg.G", "exp_avg_sq.G"} for each group G.
  std::vector<std::pair<std::string, torch::Tensor>> state() const;
  // Restores state(). Throws std::invalid_argument naming a missing or mis-shaped entry.
  void load_state(const std::vector<std::pair<std::string, torch::Tensor>>& state);

 private:
  struct Group {
    torch::Tensor params, grads, exp_avg, exp_avg_sq;  // flat, 1-D
    double weight_decay;
  };
  std::vector<Group> groups_;
  std::vector<Slot> slots_;
  AdamWOptions options_;
  int64_t step_ = 0;
};

}  // namespace i3
