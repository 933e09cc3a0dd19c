// The learning-rate schedule against the spec's values, and FlatAdamW against LibTorch's AdamW.
#include "model/optim/optimizer.h"

#include <gtest/gtest.h>

#include "model/net/i3_model.h"

namespace i3 {
namespace {

TEST(LrSchedule, PublishedRecipeValues) {
  LrSchedule s;  // peak 3e-4, warm-up 100, max 5000, floor 0.1
  EXPECT_NEAR(s.at(0), 3.0e-6, 1e-12);
  EXPECT_NEAR(s.at(99), 3.0e-4, 1e-12);
  EXPECT_NEAR(s.at(100), 3.0e-4, 1e-12);
  EXPECT_NEAR(s.at(1000), 2.7814e-4, 5e-9);
  EXPECT_NEAR(s.at(2550), 1.65e-4, 1e-10);
  EXPECT_NEAR(s.at(4999), 3.000003e-5, 1e-11);
  EXPECT_NEAR(s.at(7000), 3.0e-5, 1e-12);  // past max_iters: the floor
}

ModelConfig tiny() {
  ModelConfig c = preset("i3-tiny");
  c.vocab_size = 40;
  return c;
}

std::vector<std::pair<std::string, torch::Tensor>> named(I3Model& m) { return m->state_dict(); }

// Both optimizers on identical float64 models and batches: identical parameters after each step.
TEST(FlatAdamW, MatchesLibTorchAdamW) {
  torch::manual_seed(5);
  I3Model a(tiny()), b(tiny());
  a->to(torch::kFloat64);
  b->to(torch::kFloat64);
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  }
  FlatAdamW flat(named(a), AdamWOptions{});
  torch::optim::AdamW reference(b->parameters(), torch::optim::AdamWOptions(1e-3).betas({0.9, 0.999}).eps(1e-8).weight_decay(0.01));
  LrSchedule schedule{1e-2, 2, 10, 0.1};
  for (int step = 0; step < 6; ++step) {
    torch::Tensor idx = torch::randint(40, {2, 16}), targets = torch::randint(40, {2, 16});
    flat.zero_grad();
    I3ModelImpl::loss(a->forward(idx), targets).backward();
    const double norm_a = flat.clip_grad_norm(1.0).item<double>();
    reference.zero_grad();
    I3ModelImpl::loss(b->forward(idx), targets).backward();
    const double norm_b = torch::nn::utils::clip_grad_norm_(b->parameters(), 1.0);
    EXPECT_NEAR(norm_a, norm_b, 1e-10 * norm_b);
    flat.step(schedule.at(step));
    for (auto& group : reference.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(schedule.at(step));
    reference.step();
    double worst = 0;
    for (size_t i = 0; i < a->parameters().size(); ++i)
      worst = std::max(worst, (a->parameters()[i] - b->parameters()[i]).abs().max().item<double>());
    EXPECT_LE(worst, 1e-12) << "after step " << step;
  }
  EXPECT_EQ(flat.steps_taken(), 6);
}

TEST(FlatAdamW, OptionalNoDecayForNormsBiasesAndEmbeddings) {
  torch::manual_seed(6);
  I3Model m(tiny());
  auto before = m->state_dict();
  std::vector<torch::Tensor> copies;
  for (auto& [n, t] : before) copies.push_back(t.detach().clone());
  AdamWOptions o;
  o.decay_all = false;
  o.weight_decay = 0.5;
  FlatAdamW opt(named(m), o);
  opt.zero_grad();
  opt.step(0.1);  // zero gradients: only weight decay moves anything
  auto after = m->state_dict();
  for (size_t i = 0; i < after.size(); ++i) {
    const auto& [name, t] = after[i];
    const bool decayed = t.dim() >= 2 && name != "embed.weight" && name != "pos_embed.weight";
    EXPECT_TRUE(torch::allclose(t, copies[i] * (decayed ? 0.95 : 1.0), 1e-6, 1e-7)) << name;
  }
}

TEST(FlatAdamW, StateRoundTripContinuesIdentically) {
  torch::manual_seed(7);
  I3Model a(tiny()), b(tiny());
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  }
  FlatAdamW opt_a(named(a), {}), opt_b(named(b), {});
  torch::Tensor idx = torch::randint(40, {2, 16}), targets = torch::randint(40, {2, 16});
  for (int s = 0; s < 3; ++s) {
    opt_a.zero_grad();
    I3ModelImpl::loss(a->forward(idx), targets).backward();
    opt_a.step(1e-3);
  }
  // b takes a's parameters and optimizer state, then both take the same step.
  {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < a->parameters().size(); ++i) b->parameters()[i].copy_(a->parameters()[i]);
  }
  std::vector<std::pair<std::string, torch::Tensor>> saved;
  for (auto& [n, t] : opt_a.state()) saved.emplace_back(n, t.clone());
  opt_b.load_state(saved);
  EXPECT_EQ(opt_b.steps_taken(), 3);
  opt_a.zero_grad();
  I3ModelImpl::loss(a->forward(idx), targets).backward();
  opt_a.step(1e-3);
  opt_b.zero_grad();
  I3ModelImpl::loss(b->forward(idx), targets).backward();
  opt_b.step(1e-3);
  for (size_t i = 0; i < a->parameters().size(); ++i) EXPECT_TRUE(torch::equal(a->parameters()[i], b->parameters()[i]));
  saved.pop_back();
  EXPECT_THROW(opt_b.load_state(saved), std::invalid_argument);
}

}  // namespace
}  // namespace i3
