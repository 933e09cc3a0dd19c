#include "model/net/cross_entropy.h"

#include <ATen/Parallel.h>

#include <cmath>
#include <limits>
#include <vector>

namespace i3 {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

struct FusedCrossEntropy : torch::autograd::Function<FusedCrossEntropy> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& logits_in, const torch::Tensor& targets_in) {
    const torch::Tensor logits = logits_in.contiguous();
    const torch::Tensor targets = targets_in.to(torch::kLong).contiguous();
    const int64_t N = logits.size(0), V = logits.size(1);
    torch::Tensor grad = torch::empty_like(logits);
    const torch::Tensor t_all = targets.view({N, 1});
    TORCH_CHECK(N == 0 || (t_all.min().item<int64_t>() >= 0 && t_all.max().item<int64_t>() < V),
                "cross_entropy: a target is outside the vocabulary of ", V);
    std::vector<double> row_loss(N);
    const double inv_n = 1.0 / static_cast<double>(N);
    // Blocks of rows small enough to stay in a core's cache between the passes; each pass is
    // one of ATen's vectorised kernels (which run serially inside this parallel loop).
    constexpr int64_t kRows = 4;
    at::parallel_for(0, (N + kRows - 1) / kRows, 1, [&](int64_t begin, int64_t end) {
      for (int64_t block = begin; block < end; ++block) {
        const int64_t first = block * kRows, rows = std::min(kRows, N - first);
        const torch::Tensor x = logits.narrow(0, first, rows), t = t_all.narrow(0, first, rows);
        torch::Tensor g = grad.narrow(0, first, rows);
        const torch::Tensor m = x.amax(1, /*keepdim=*/true);               // [rows, 1]
        at::sub_out(g, x, m).exp_();                                        // e = exp(x − m)
        const torch::Tensor sum = g.sum(1, /*keepdim=*/true, torch::kFloat64);
        const torch::Tensor loss = (m.to(torch::kFloat64) + sum.log() - x.gather(1, t).to(torch::kFloat64)).view({rows});
        g.mul_((sum.reciprocal() * inv_n).to(torch::kFloat32));            // softmax / N
        g.scatter_add_(1, t, torch::full({rows, 1}, -inv_n, g.options()));  // − one-hot / N
        const double* l = loss.data_ptr<double>();
        std::copy(l, l + rows, row_loss.begin() + first);
      }
    });
    double total = 0;
    for (double l : row_loss) total += l;  // in row order: the same bits on any thread count
    ctx->saved_data["grad"] = grad;
    return torch::tensor(static_cast<float>(total / N));
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grad_outputs) {
    torch::Tensor grad = ctx->saved_data["grad"].toTensor();
    TORCH_CHECK(grad.defined(), "cross_entropy: backward ran twice through one forward");
    ctx->saved_data["grad"] = torch::Tensor();
    const torch::Tensor& upstream = grad_outputs[0];
    if (upstream.item<float>() != 1.0f) grad.mul_(upstream);
    return {grad, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor cross_entropy(const torch::Tensor& logits, const torch::Tensor& targets) {
  if (logits.is_cpu() && logits.scalar_type() == torch::kFloat32 && logits.dim() == 2 && logits.requires_grad() &&
      torch::GradMode::is_enabled())
    return FusedCrossEntropy::apply(logits, targets);
  return torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), targets);
}

}  // namespace i3
