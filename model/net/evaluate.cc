#include "model/net/evaluate.h"

#include <algorithm>
#include <stdexcept>

#include "model/net/runtime.h"

namespace i3 {

torch::Tensor eval_windows(const std::vector<int64_t>& tokens, int64_t window, int64_t max_windows) {
  if (window < 2) throw std::invalid_argument("eval_windows: a window needs at least 2 tokens");
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n < window) {
    if (n < 2) return torch::empty({0, window}, torch::kLong);
    return torch::tensor(tokens, torch::kLong).unsqueeze(0);
  }
  const int64_t available = n / window;
  const int64_t count = max_windows > 0 ? std::min(available, max_windows) : available;
  torch::Tensor out = torch::empty({count, window}, torch::kLong);
  int64_t* dst = out.data_ptr<int64_t>();
  for (int64_t i = 0; i < count; ++i) {
    const int64_t slot = i * available / count;  // evenly spaced over the stream
    std::copy_n(tokens.begin() + slot * window, window, dst + i * window);
  }
  return out;
}

EvalResult evaluate(I3Model& model, const torch::Tensor& windows, int64_t batch_size, bool bf16) {
  torch::NoGradGuard no_grad;
  const torch::Device device = model->parameters().front().device();
  const int64_t n = windows.size(0), length = windows.size(1);
  torch::Tensor nll = torch::zeros({}, torch::TensorOptions().dtype(torch::kFloat64).device(device));
  for (int64_t begin = 0; begin < n; begin += batch_size) {
    torch::Tensor batch = windows.narrow(0, begin, std::min(batch_size, n - begin)).to(device);
    torch::Tensor inputs = batch.narrow(1, 0, length - 1), targets = batch.narrow(1, 1, length - 1);
    torch::Tensor logits;
    {
      CudaBf16Autocast autocast(bf16);
      logits = model->forward(inputs);  // [b, length-1, V]
    }
    nll += torch::nn::functional::cross_entropy(
               logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32), targets.reshape({-1}),
               torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum))
               .to(torch::kFloat64);
  }
  EvalResult result;
  result.tokens = n * (length - 1);
  result.loss = result.tokens > 0 ? nll.item<double>() / result.tokens : 0.0;
  return result;
}

}  // namespace i3
