// Incremental decoding (hybrid states + KV cache) against full re-computation, the windows past
// the context, last-position logits, sampling rules.
#include "model/net/generate.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>

namespace i3 {
namespace {

// A tiny model whose weights are pushed away from the near-zero initialisation so that
// activations and logits are of order one and differences would show.
I3Model lively_model(int64_t vocab = 50, int64_t context = 64) {
  ModelConfig c = preset("i3-tiny");
  c.vocab_size = vocab;
  c.context = context;
  torch::manual_seed(11);
  I3Model model(c);
  torch::NoGradGuard no_grad;
  for (auto& p : model->parameters()) p.add_(torch::randn_like(p) * 0.2);
  for (auto& m : model->modules(false)) {
    if (auto* h = m->as<HybridMixImpl>()) {
      h->w_mix.uniform_(0.1, 0.95);
      h->A.copy_(std::get<0>(torch::linalg_qr(torch::randn_like(h->A))) * 0.97);
    }
  }
  model->eval();
  return model;
}

ChunkTokenizer numbered_vocab(int64_t vocab) {
  std::vector<std::string> chunks = {ChunkTokenizer::kUnkToken};
  for (int64_t i = 1; i < vocab; ++i) chunks.push_back(std::string(1, static_cast<char>('a' + i % 26)) + std::to_string(i));
  return ChunkTokenizer(chunks);
}

TEST(Incremental, LogitsEqualFullRecomputationWithinTheContext) {
  I3Model model = lively_model();
  torch::NoGradGuard no_grad;
  const int64_t context = model->config().context;
  torch::Tensor seq = torch::randint(1, 50, {2, context}, torch::kLong);  // batch of two
  DecodeState state;
  // Feed a 5-token prefix, then a 3-token block (cached keys plus a causal block), then
  // single tokens up to the full context.
  int64_t pos = 0;
  std::vector<int64_t> steps = {5, 3};
  while (pos + 8 + static_cast<int64_t>(steps.size()) - 2 < context) steps.push_back(1);
  double worst = 0, scale = 0;
  for (int64_t n : steps) {
    if (pos + n > context) break;
    torch::Tensor inc = model->forward(seq.narrow(1, pos, n), &state);         // [2,n,V]
    torch::Tensor full = model->forward(seq.narrow(1, 0, pos + n)).narrow(1, pos, n);
    worst = std::max(worst, (inc - full).abs().max().item<double>());
    scale = std::max(scale, full.abs().max().item<double>());
    pos += n;
  }
  EXPECT_EQ(state.position, pos);
  EXPECT_GT(scale, 0.5) << "logits too small for the comparison to mean anything";
  RecordProperty("max_abs_diff", ::testing::PrintToString(worst));
  RecordProperty("max_abs_logit", std::to_string(scale));
  EXPECT_LE(worst, 1e-5) << "largest |incremental - full| over " << pos << " positions";
}

TEST(Incremental, GreedyGenerationMatchesFullRecomputationPastTheContext) {
  I3Model model = lively_model(50, 32);
  ChunkTokenizer tok = numbered_vocab(50);
  SamplingOptions options;
  options.greedy = true;
  options.max_new_tokens = 60;  // runs past the 32-token context: re-reads of the half window
  Generation inc = generate(model, tok, {3, 1, 4, 1, 5}, options);
  options.incremental = false;
  Generation full = generate(model, tok, {3, 1, 4, 1, 5}, options);
  EXPECT_EQ(inc.ids, full.ids);
  EXPECT_EQ(inc.ids.size(), 60u);
  EXPECT_EQ(inc.finish_reason, "length");
}

TEST(LastLogits, EqualTheLastRowOfForward) {
  I3Model model = lively_model();
  torch::NoGradGuard no_grad;
  const int64_t context = model->config().context;
  torch::Tensor seq = torch::randint(1, 50, {2, context}, torch::kLong);
  for (int64_t T : {int64_t{1}, int64_t{7}, context}) {
    torch::Tensor last = model->last_logits(seq.narrow(1, 0, T));  // [2,V]
    ASSERT_EQ(last.sizes(), torch::IntArrayRef({2, 50}));
    torch::Tensor full = model->forward(seq.narrow(1, 0, T)).select(1, T - 1);
    EXPECT_LE((last - full).abs().max().item<double>(), 1e-5) << "T = " << T;
  }
  // With a state: a 5-token prefix, a 3-token block, one token; the state advances as forward's.
  DecodeState with_last, with_full;
  int64_t pos = 0;
  for (int64_t n : {5, 3, 1}) {
    torch::Tensor last = model->last_logits(seq.narrow(1, pos, n), &with_last);
    torch::Tensor full = model->forward(seq.narrow(1, pos, n), &with_full).select(1, n - 1);
    pos += n;
    EXPECT_EQ(with_last.position, pos);
    EXPECT_LE((last - full).abs().max().item<double>(), 1e-5) << "block of " << n;
  }
}

// Generation as it was before window modes and last_logits: incremental with full logits while
// the sequence fits the context. REQUIRES: prompt + max_new_tokens - 1 <= context.
std::vector<int64_t> todays_incremental(I3Model& model, std::vector<int64_t> ids, const SamplingOptions& o) {
  torch::NoGradGuard no_grad;
  std::mt19937_64 rng(o.seed);
  DecodeState state;
  std::vector<int64_t> out;
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    std::vector<int64_t> fresh(ids.begin() + state.position, ids.end());
    torch::Tensor logits = model->forward(torch::tensor(fresh).view({1, -1}), &state);  // [1,T,V]
    out.push_back(sample_token(logits[0][-1], o, &rng));
    ids.push_back(out.back());
  }
  return out;
}

// Greedy decoding computed from scratch for every token, reading ids[begin(n)..n-1] at
// positions 0.. when n tokens are known: a statement of what the model sees, with no state.
std::vector<int64_t> greedy_from_scratch(I3Model& model, std::vector<int64_t> ids, int64_t new_tokens,
                                         const std::function<int64_t(int64_t)>& begin) {
  torch::NoGradGuard no_grad;
  SamplingOptions greedy;
  greedy.greedy = true;
  std::mt19937_64 unused;
  std::vector<int64_t> out;
  for (int64_t step = 0; step < new_tokens; ++step) {
    const int64_t n = static_cast<int64_t>(ids.size());
    std::vector<int64_t> window(ids.begin() + begin(n), ids.end());
    torch::Tensor logits = model->forward(torch::tensor(window).view({1, -1}));  // [1,T,V]
    out.push_back(sample_token(logits[0][-1], greedy, &unused));
    ids.push_back(out.back());
  }
  return out;
}

// The documented windows (generate.h). slide: the last `context` tokens.
std::function<int64_t(int64_t)> slide_begin(int64_t context) {
  return [=](int64_t n) { return std::max<int64_t>(0, n - context); };
}

// half: from a prompt of n0 tokens the window starts at b0 = max(0, n0 - context) and grows to
// `context` tokens; the next token moves it to the last h = ceil(context/2) tokens, and so on:
// moves when n = b0 + context + 1 + k·(context + 1 - h), k = 0, 1, ...
std::function<int64_t(int64_t)> half_begin(int64_t context, int64_t n0) {
  const int64_t b0 = std::max<int64_t>(0, n0 - context), h = (context + 1) / 2, cycle = context + 1 - h;
  return [=](int64_t n) {
    if (n - b0 <= context) return b0;
    const int64_t k = (n - b0 - context - 1) / cycle;
    return b0 + context + 1 + k * cycle - h;
  };
}

TEST(Window, BothModesDecodeAsBeforeWithinTheContext) {
  I3Model model = lively_model();  // context 64
  ChunkTokenizer tok = numbered_vocab(50);
  const std::vector<int64_t> prompt = {3, 1, 4, 1, 5};
  SamplingOptions o;
  o.max_new_tokens = 64 - 5 + 1;  // the last token is read from a full context
  for (bool greedy : {true, false}) {
    o.greedy = greedy;
    o.seed = 4;
    o.top_k = greedy ? 0 : 20;
    const std::vector<int64_t> before = todays_incremental(model, prompt, o);
    for (Window w : {Window::kHalf, Window::kSlide}) {
      o.window = w;
      EXPECT_EQ(generate(model, tok, prompt, o).ids, before) << "greedy " << greedy << ", slide " << (w == Window::kSlide);
    }
  }
}

TEST(Window, SlideIsThePublishedSlidingWindowPastTheContext) {
  I3Model model = lively_model(50, 32);
  ChunkTokenizer tok = numbered_vocab(50);
  SamplingOptions o;
  o.greedy = true;
  o.window = Window::kSlide;
  for (const std::vector<int64_t>& prompt : {std::vector<int64_t>{3, 1, 4, 1, 5}, std::vector<int64_t>(40, 7)}) {
    o.max_new_tokens = 70;  // more than two contexts past the end of it
    o.incremental = true;
    const std::vector<int64_t> ids = generate(model, tok, prompt, o).ids;
    EXPECT_EQ(ids, greedy_from_scratch(model, prompt, 70, slide_begin(32)));
    o.incremental = false;
    EXPECT_EQ(generate(model, tok, prompt, o).ids, ids);
  }
}

TEST(Window, HalfRereadsTheLastHalfWindowPastTheContext) {
  ChunkTokenizer tok = numbered_vocab(50);
  SamplingOptions o;
  o.greedy = true;
  o.max_new_tokens = 100;
  // An even and an odd context (h = 16 and 17), a short prompt and one longer than the context.
  for (int64_t context : {32, 33}) {
    I3Model model = lively_model(50, context);
    for (const std::vector<int64_t>& prompt : {std::vector<int64_t>{3, 1, 4, 1, 5}, std::vector<int64_t>(40, 7)}) {
      const auto n0 = static_cast<int64_t>(prompt.size());
      o.window = Window::kHalf;
      o.incremental = true;
      const std::vector<int64_t> half = generate(model, tok, prompt, o).ids;
      EXPECT_EQ(half, greedy_from_scratch(model, prompt, 100, half_begin(context, n0)))
          << "context " << context << ", prompt " << n0;
      o.incremental = false;
      EXPECT_EQ(generate(model, tok, prompt, o).ids, half);
      // The windows differ from the sliding one, and so (with these weights) do the tokens.
      o.window = Window::kSlide;
      EXPECT_NE(generate(model, tok, prompt, o).ids, half);
    }
  }
}

TEST(Window, HalfGeneratesFarPastTheContext) {
  I3Model model = lively_model();  // context 64
  ChunkTokenizer tok = numbered_vocab(50);
  SamplingOptions o;
  o.max_new_tokens = 3 * 64;
  o.seed = 1;
  o.top_p = 0.9;
  Generation g = generate(model, tok, {2, 7}, o);
  EXPECT_EQ(g.ids.size(), 192u);
  EXPECT_EQ(g.finish_reason, "length");
  o.window = Window::kSlide;
  Generation slide = generate(model, tok, {2, 7}, o);
  // Identical while the sequence fits (2 + 63 tokens read), different once the windows differ.
  EXPECT_TRUE(std::equal(g.ids.begin(), g.ids.begin() + 63, slide.ids.begin()));
  EXPECT_NE(g.ids, slide.ids);
}

TEST(Window, SeedsAndStopStringsWorkPastTheContext) {
  I3Model model = lively_model(50, 32);
  ChunkTokenizer tok = numbered_vocab(50);
  for (Window w : {Window::kHalf, Window::kSlide}) {
    SamplingOptions o;
    o.window = w;
    o.max_new_tokens = 100;
    o.seed = 9;
    Generation a = generate(model, tok, {7, 8}, o);
    EXPECT_EQ(generate(model, tok, {7, 8}, o).ids, a.ids);
    o.seed = 10;
    EXPECT_NE(generate(model, tok, {7, 8}, o).ids, a.ids);

    // Stop at three chunks generated well past the context, whose first occurrence is there too.
    o.seed = 9;
    std::string before, stop;
    for (int64_t i = 0; i < 70; ++i) before += tok.chunk(a.ids[i]);
    for (int64_t i = 70; i < 73; ++i) stop += tok.chunk(a.ids[i]);
    const size_t at = a.text.find(stop);
    ASSERT_GE(at, before.size()) << "pick another stop string: this one occurs before token 70";
    o.stop = {stop};
    Generation c = generate(model, tok, {7, 8}, o);
    EXPECT_EQ(c.finish_reason, "stop");
    EXPECT_EQ(c.text, a.text.substr(0, at));
    EXPECT_LE(c.ids.size(), 73u);
  }
}

TEST(Sampling, GreedyTopKAndTopPPickTheArgmax) {
  torch::Tensor logits = torch::tensor({0.1, 2.0, -1.0, 1.9});
  std::mt19937_64 rng(1);
  SamplingOptions o;
  o.greedy = true;
  EXPECT_EQ(sample_token(logits, o, &rng), 1);
  o = SamplingOptions{};
  o.temperature = 0;
  EXPECT_EQ(sample_token(logits, o, &rng), 1);
  o = SamplingOptions{};
  o.top_k = 1;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, o, &rng), 1);
  o = SamplingOptions{};
  o.top_p = 0.01;
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sample_token(logits, o, &rng), 1);
  o = SamplingOptions{};
  o.top_k = 2;  // only ids 1 and 3 survive
  for (int i = 0; i < 200; ++i) {
    int64_t t = sample_token(logits, o, &rng);
    EXPECT_TRUE(t == 1 || t == 3) << t;
  }
}

TEST(Sampling, FrequenciesFollowTheTemperedSoftmax) {
  torch::Tensor logits = torch::tensor({1.0, 0.0, -1.0, 0.5});
  SamplingOptions o;
  o.temperature = 2.0;
  std::mt19937_64 rng(42);
  std::map<int64_t, int> counts;
  const int draws = 40000;
  for (int i = 0; i < draws; ++i) counts[sample_token(logits, o, &rng)]++;
  torch::Tensor p = torch::softmax(logits / 2.0, 0);
  for (int64_t i = 0; i < 4; ++i) EXPECT_NEAR(counts[i] / double(draws), p[i].item<double>(), 0.01) << i;
}

TEST(Sampling, TopPKeepsTheSmallestSetReachingP) {
  // probabilities 0.5, 0.3, 0.2 (as logits): p = 0.7 keeps the first two.
  torch::Tensor logits = torch::log(torch::tensor({0.5, 0.3, 0.2}));
  SamplingOptions o;
  o.top_p = 0.7;
  std::mt19937_64 rng(5);
  std::map<int64_t, int> counts;
  for (int i = 0; i < 20000; ++i) counts[sample_token(logits, o, &rng)]++;
  EXPECT_EQ(counts[2], 0);
  EXPECT_NEAR(counts[0] / 20000.0, 0.5 / 0.8, 0.015);
}

TEST(Generate, SeedsAreReproducibleAndStopStringsCut) {
  I3Model model = lively_model();
  ChunkTokenizer tok = numbered_vocab(50);
  SamplingOptions o;
  o.max_new_tokens = 30;
  o.seed = 9;
  Generation a = generate(model, tok, {7, 8}, o);
  Generation b = generate(model, tok, {7, 8}, o);
  EXPECT_EQ(a.ids, b.ids);
  o.seed = 10;
  EXPECT_NE(generate(model, tok, {7, 8}, o).ids, a.ids);

  // Stop at a chunk from the middle of the first output: the text ends right before it.
  o.seed = 9;
  const std::string stop = tok.chunk(a.ids[10]);
  const size_t at = a.text.find(stop);
  o.stop = {stop};
  Generation c = generate(model, tok, {7, 8}, o);
  EXPECT_EQ(c.finish_reason, "stop");
  EXPECT_EQ(c.text, a.text.substr(0, at));
  EXPECT_LE(c.ids.size(), 11u);
  EXPECT_THROW(generate(model, tok, {}, o), std::invalid_argument);
  o.top_p = 0;
  EXPECT_THROW(generate(model, tok, {1}, o), std::invalid_argument);
}

TEST(Score, LogprobsAreTheNextTokenLogSoftmax) {
  I3Model model = lively_model();
  std::vector<int64_t> ids = {5, 9, 2, 33, 7};
  std::vector<double> lp = token_logprobs(model, ids);
  ASSERT_EQ(lp.size(), 4u);
  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->forward(torch::tensor(ids).view({1, -1}));
  torch::Tensor ref = torch::log_softmax(logits.to(torch::kFloat64), -1)[0];
  for (size_t t = 1; t < ids.size(); ++t) EXPECT_NEAR(lp[t - 1], ref[t - 1][ids[t]].item<double>(), 1e-9);
  EXPECT_THROW(token_logprobs(model, std::vector<int64_t>(65, 1)), std::invalid_argument);
}

}  // namespace
}  // namespace i3
