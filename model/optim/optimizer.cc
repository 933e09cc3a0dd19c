#include "model/optim/optimizer.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <map>
#include <stdexcept>

namespace i3 {

namespace {

bool decays(const std::string& name, const torch::Tensor& p, const AdamWOptions& o) {
  if (o.decay_all) return true;
  const bool embedding = name == "embed.weight" || name == "pos_embed.weight";
  return p.dim() >= 2 && !embedding;
}

}  // namespace

FlatAdamW::FlatAdamW(std::vector<std::pair<std::string, torch::Tensor>> named_params, AdamWOptions options)
    : options_(options) {
  if (named_params.empty()) throw std::invalid_argument("FlatAdamW: no parameters");
  const auto tensor_options = named_params[0].second.options();
  slots_.resize(named_params.size());
  for (bool decay : {true, false}) {
    std::vector<size_t> members;  // indexes into named_params and slots_
    int64_t total = 0;
    for (size_t i = 0; i < named_params.size(); ++i) {
      const auto& [name, p] = named_params[i];
      if (decays(name, p, options) != decay) continue;
      if (p.device() != tensor_options.device() || p.dtype() != tensor_options.dtype())
        throw std::invalid_argument("FlatAdamW: parameter " + name + " differs in device or dtype");
      slots_[i] = {p, groups_.size(), total, p.numel()};
      members.push_back(i);
      total += p.numel();
    }
    if (members.empty()) continue;
    Group g;
    g.params = torch::empty({total}, tensor_options);
    g.grads = torch::zeros({total}, tensor_options);
    g.exp_avg = torch::zeros({total}, tensor_options);
    g.exp_avg_sq = torch::zeros({total}, tensor_options);
    g.weight_decay = decay ? options.weight_decay : 0.0;
    torch::NoGradGuard no_grad;
    for (size_t i : members) {
      // The parameter (same autograd variable) now lives in the flat buffer, and so does its
      // gradient: backward() accumulates into these views in place.
      const Slot& s = slots_[i];
      torch::Tensor p = s.param;
      torch::Tensor view = g.params.narrow(0, s.offset, s.numel).view(p.sizes());
      view.copy_(p);
      p.set_data(view);
      p.mutable_grad() = g.grads.narrow(0, s.offset, s.numel).view(p.sizes());
    }
    groups_.push_back(std::move(g));
  }
}

std::vector<torch::Tensor> FlatAdamW::state_buffers() const {
  std::vector<torch::Tensor> out;
  for (const Group& g : groups_) out.insert(out.end(), {g.params, g.exp_avg, g.exp_avg_sq});
  return out;
}

void FlatAdamW::zero_grad() {
  for (auto& g : groups_) g.grads.zero_();
}

torch::Tensor FlatAdamW::clip_grad_norm(double max_norm) {
  torch::NoGradGuard no_grad;
  if (!groups_[0].grads.is_cpu()) {
    torch::Tensor sum_sq = torch::zeros({}, groups_[0].grads.options().dtype(torch::kFloat64));
    for (auto& g : groups_) sum_sq += g.grads.norm().to(torch::kFloat64).square();
    torch::Tensor norm = sum_sq.sqrt();
    if (max_norm > 0) {
      torch::Tensor coef = (norm + 1e-6).reciprocal().mul(max_norm).clamp_max(1.0).to(groups_[0].grads.dtype());
      for (auto& g : groups_) g.grads.mul_(coef);
    }
    return norm;
  }
  double sum_sq = 0;
  for (auto& g : groups_) {
    const double n = g.grads.norm().item<double>();  // one pass, no temporary buffer
    sum_sq += n * n;
  }
  const double norm = std::sqrt(sum_sq);
  // As torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when that is < 1.
  const double coef = max_norm / (norm + 1e-6);
  if (max_norm > 0 && coef < 1)
    for (auto& g : groups_) g.grads.mul_(coef);
  return torch::tensor(norm, torch::kFloat64);
}

void FlatAdamW::step(double lr) {
  ++step_;
  const double b1 = options_.beta1, b2 = options_.beta2, eps = options_.eps;
  const double bc1 = 1 - std::pow(b1, static_cast<double>(step_));
  const double bc2_sqrt = std::sqrt(1 - std::pow(b2, static_cast<double>(step_)));
  const double step_size = lr / bc1;
  torch::NoGradGuard no_grad;
  for (auto& g : groups_) {
    const double decay = 1 - lr * g.weight_decay;
    if (!g.params.is_cpu()) {
      // Other devices: the same arithmetic as a handful of whole-buffer ops.
      g.params.mul_(decay);
      g.exp_avg.mul_(b1).add_(g.grads, 1 - b1);
      g.exp_avg_sq.mul_(b2).addcmul_(g.grads, g.grads, 1 - b2);
      g.params.addcdiv_(g.exp_avg, (g.exp_avg_sq.sqrt() / bc2_sqrt).add_(eps), -step_size);
      continue;
    }
    // One pass over memory: read p, g, m, v once, write p, m, v once.
    AT_DISPATCH_FLOATING_TYPES(g.params.scalar_type(), "FlatAdamW", [&] {
      scalar_t* p = g.params.data_ptr<scalar_t>();
      const scalar_t* grad = g.grads.data_ptr<scalar_t>();
      scalar_t* m = g.exp_avg.data_ptr<scalar_t>();
      scalar_t* v = g.exp_avg_sq.data_ptr<scalar_t>();
      const scalar_t d = static_cast<scalar_t>(decay), beta1 = static_cast<scalar_t>(b1), beta2 = static_cast<scalar_t>(b2);
      const scalar_t one_b1 = static_cast<scalar_t>(1 - b1), one_b2 = static_cast<scalar_t>(1 - b2);
      const scalar_t inv_bc2 = static_cast<scalar_t>(1 / bc2_sqrt), e = static_cast<scalar_t>(eps);
      const scalar_t size = static_cast<scalar_t>(step_size);
      at::parallel_for(0, g.params.numel(), 1 << 14, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const scalar_t gi = grad[i];
          const scalar_t mi = beta1 * m[i] + one_b1 * gi;
          const scalar_t vi = beta2 * v[i] + one_b2 * gi * gi;
          m[i] = mi;
          v[i] = vi;
          p[i] = p[i] * d - size * mi / (std::sqrt(vi) * inv_bc2 + e);
        }
      });
    });
  }
}

std::vector<std::pair<std::string, torch::Tensor>> FlatAdamW::state() const {
  std::vector<std::pair<std::string, torch::Tensor>> out = {{"step", torch::tensor(step_, torch::kInt64)}};
  for (size_t i = 0; i < groups_.size(); ++i) {
    out.emplace_back("exp_avg." + std::to_string(i), groups_[i].exp_avg);
    out.emplace_back("exp_avg_sq." + std::to_string(i), groups_[i].exp_avg_sq);
  }
  return out;
}

void FlatAdamW::load_state(const std::vector<std::pair<std::string, torch::Tensor>>& state) {
  std::map<std::string, torch::Tensor> by_name(state.begin(), state.end());
  auto get = [&](const std::string& name, const torch::Tensor& like) {
    auto it = by_name.find(name);
    if (it == by_name.end()) throw std::invalid_argument("optimizer state lacks " + name);
    if (like.defined() && it->second.sizes() != like.sizes())
      throw std::invalid_argument("optimizer state " + name + " has the wrong shape for this model");
    return it->second;
  };
  torch::NoGradGuard no_grad;
  step_ = get("step", torch::Tensor()).item<int64_t>();
  for (size_t i = 0; i < groups_.size(); ++i) {
    groups_[i].exp_avg.copy_(get("exp_avg." + std::to_string(i), groups_[i].exp_avg));
    groups_[i].exp_avg_sq.copy_(get("exp_avg_sq." + std::to_string(i), groups_[i].exp_avg_sq));
  }
}

}  // namespace i3
