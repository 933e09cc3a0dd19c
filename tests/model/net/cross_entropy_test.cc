// The fused CPU cross-entropy against torch's own: loss and gradient.
#include <gtest/gtest.h>

#include "model/net/cross_entropy.h"

namespace {

// Loss and logits-gradient of `loss_fn` for these logits, with the loss scaled by `upstream`
// before backward (as gradient accumulation does).
std::pair<double, torch::Tensor> loss_and_grad(const torch::Tensor& logits, const torch::Tensor& targets, double upstream,
                                               bool fused) {
  torch::Tensor x = logits.clone().requires_grad_(true);
  torch::Tensor loss = fused ? i3::cross_entropy(x, targets) : torch::nn::functional::cross_entropy(x, targets);
  (loss * upstream).backward();
  return {loss.item<double>(), x.grad()};
}

TEST(CrossEntropy, MatchesTorchInLossAndGradient) {
  torch::manual_seed(3);
  for (double scale : {1.0, 30.0}) {  // ordinary logits, and peaked ones far from zero
    for (double upstream : {1.0, 0.25}) {
      torch::Tensor logits = torch::randn({37, 1013}) * scale + 5;
      torch::Tensor targets = torch::randint(1013, {37}, torch::kLong);
      auto [fused_loss, fused_grad] = loss_and_grad(logits, targets, upstream, true);
      auto [torch_loss, torch_grad] = loss_and_grad(logits, targets, upstream, false);
      EXPECT_NEAR(fused_loss, torch_loss, 1e-5 * std::abs(torch_loss)) << scale;
      EXPECT_LT((fused_grad - torch_grad).abs().max().item<double>(), 1e-7) << scale << " " << upstream;
    }
  }
}

TEST(CrossEntropy, NonFiniteLogitsGiveANonFiniteLoss) {
  torch::Tensor logits = torch::zeros({2, 5});
  logits[1][3] = std::numeric_limits<float>::quiet_NaN();
  torch::Tensor x = logits.clone().requires_grad_(true);
  EXPECT_TRUE(std::isnan(i3::cross_entropy(x, torch::tensor({0, 1}, torch::kLong)).item<double>()));
}

TEST(CrossEntropy, RejectsTargetsOutsideTheVocabulary) {
  torch::Tensor x = torch::zeros({2, 5}).requires_grad_(true);
  EXPECT_THROW(i3::cross_entropy(x, torch::tensor({0, 5}, torch::kLong)), c10::Error);
}

}  // namespace
