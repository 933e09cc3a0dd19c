#include "model/net/generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <stdexcept>

#include "model/text/unicode.h"

namespace i3 {

void validate(const SamplingOptions& o) {
  if (o.max_new_tokens < 0) throw std::invalid_argument("max-new-tokens must be >= 0");
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature)) throw std::invalid_argument("temperature must be >= 0");
  if (o.top_k < 0) throw std::invalid_argument("top-k must be >= 0 (0 turns it off)");
  if (!(o.top_p > 0 && o.top_p <= 1)) throw std::invalid_argument("top-p must be in (0, 1]");
}

int64_t sample_token(const torch::Tensor& logits_row, const SamplingOptions& o, std::mt19937_64* rng) {
  // Greedy on an accelerator: one index comes back instead of the whole row (argmax picks the
  // first of equal maxima, as max_element below does).
  if ((o.greedy || o.temperature == 0) && !logits_row.is_cpu()) return logits_row.argmax().item<int64_t>();
  torch::Tensor row = logits_row.detach().to(torch::kCPU, torch::kFloat64).contiguous();
  const double* data = row.data_ptr<double>();
  const int64_t V = row.numel();
  if (o.greedy || o.temperature == 0) return std::max_element(data, data + V) - data;

  std::vector<double> z(data, data + V);
  for (double& v : z) v /= o.temperature;
  if (o.top_k > 0 && o.top_k < V) {
    std::vector<double> sorted(z);
    std::nth_element(sorted.begin(), sorted.begin() + (o.top_k - 1), sorted.end(), std::greater<double>());
    const double kth = sorted[o.top_k - 1];
    for (double& v : z)
      if (v < kth) v = -INFINITY;
  }
  const double max = *std::max_element(z.begin(), z.end());
  std::vector<double> p(V);
  for (int64_t i = 0; i < V; ++i) p[i] = std::exp(z[i] - max);
  if (o.top_p < 1) {
    const double total = std::accumulate(p.begin(), p.end(), 0.0);
    std::vector<int64_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return p[a] != p[b] ? p[a] > p[b] : a < b; });
    double mass = 0;
    size_t keep = 0;
    while (keep < order.size() && mass < o.top_p * total) mass += p[order[keep++]];
    for (size_t i = keep; i < order.size(); ++i) p[order[i]] = 0;
  }
  const double total = std::accumulate(p.begin(), p.end(), 0.0);
  // 53 random bits → a double in [0, total): the same draw everywhere for a seed.
  double r = static_cast<double>((*rng)() >> 11) * 0x1.0p-53 * total;
  for (int64_t i = 0; i < V; ++i) {
    if (r < p[i]) return i;
    r -= p[i];
  }
  for (int64_t i = V - 1; i >= 0; --i)  // rounding left r at the end: the last candidate
    if (p[i] > 0) return i;
  return 0;
}

Generation generate(I3Model& model, const ChunkTokenizer& tokenizer, const std::vector<int64_t>& prompt,
                    const SamplingOptions& options, const std::function<void(int64_t)>& on_token) {
  validate(options);
  if (prompt.empty()) throw std::invalid_argument("the prompt has no tokens: give at least one character");
  torch::NoGradGuard no_grad;
  model->eval();
  const int64_t context = model->config().context;
  const torch::Device device = model->head->weight.device();
  auto as_tensor = [&](std::vector<int64_t>::const_iterator begin, std::vector<int64_t>::const_iterator end) {
    std::vector<int64_t> v(begin, end);
    return torch::tensor(v, torch::kLong).view({1, -1}).to(device);
  };
  std::vector<std::string> stops;
  for (const auto& s : options.stop) {
    std::u32string cps;
    decode_utf8(s, &cps);
    if (!cps.empty()) stops.push_back(to_utf8(lowercase(cps)));
  }

  std::mt19937_64 rng(options.seed);
  std::vector<int64_t> ids = prompt;
  // The model reads the window ids[begin..]; `state` holds its first state.position tokens.
  int64_t begin = std::max<int64_t>(0, static_cast<int64_t>(ids.size()) - context);
  // The window's length right after it moves (generate.h): the full context, or ⌈context/2⌉.
  const int64_t moved_length = options.window == Window::kSlide ? context : (context + 1) / 2;
  DecodeState state;
  Generation out;
  out.finish_reason = "length";
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    if (options.interrupt && options.interrupt->load()) {
      out.finish_reason = "interrupted";
      return out;
    }
    const int64_t n = static_cast<int64_t>(ids.size());
    if (n - begin > context) {  // the newest token does not fit: move the window
      begin = n - moved_length;
      state = DecodeState{};
    }
    const auto window = ids.begin() + begin;
    torch::Tensor logits = options.incremental  // [1,V]
                               ? model->last_logits(as_tensor(window + state.position, ids.end()), &state)
                               : model->last_logits(as_tensor(window, ids.end()));
    const int64_t next = sample_token(logits[0], options, &rng);
    ids.push_back(next);
    out.ids.push_back(next);
    out.text += tokenizer.chunk(static_cast<int32_t>(next));  // decoding is concatenation
    if (on_token) on_token(next);
    size_t cut = std::string::npos;
    for (const auto& s : stops) cut = std::min(cut, out.text.find(s));
    if (cut != std::string::npos) {
      out.text.resize(cut);
      out.finish_reason = "stop";
      return out;
    }
  }
  return out;
}

std::vector<double> token_logprobs(I3Model& model, const std::vector<int64_t>& ids) {
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 1 || n > model->config().context)
    throw std::invalid_argument("scoring needs 1.." + std::to_string(model->config().context) + " tokens, got " +
                                std::to_string(n));
  torch::NoGradGuard no_grad;
  model->eval();
  const torch::Device device = model->head->weight.device();
  torch::Tensor idx = torch::tensor(ids, torch::kLong).view({1, -1}).to(device);
  torch::Tensor logp = torch::log_softmax(model->forward(idx).to(torch::kFloat64), -1)[0];  // [T,V]
  std::vector<double> out;
  for (int64_t t = 1; t < n; ++t) out.push_back(logp[t - 1][ids[t]].item<double>());
  return out;
}

}  // namespace i3
