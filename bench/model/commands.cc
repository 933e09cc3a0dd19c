#include "bench/model/commands.h"

#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <torch/cuda.h>

#ifdef I3LAB_WITH_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "common/util/clock.h"
#include "common/util/files.h"
#include "model/dist/data_parallel.h"
#include "model/net/generate.h"
#include "model/net/i3_model.h"
#include "model/net/runtime.h"
#include "model/text/tokenizer.h"
#include "model/optim/optimizer.h"

namespace i3 {
namespace {

using Json = nlohmann::ordered_json;
using util::Clock;
using util::seconds_since;

// Applies --threads TORCH,BLAS if given, else the default split.
void apply_threads(const cli::Args& args) {
  if (!args.has("threads")) return set_default_threads();
  auto t = cli::parse_int_list(args.get("threads"), "--threads");
  if (t.size() != 2) throw cli::UsageError("--threads expects TORCH,BLAS such as 1,2");
  set_threads(static_cast<int>(t[0]), static_cast<int>(t[1]));
}

// --device (default cpu) and --dtype (float32, or bfloat16: autocast on CUDA).
struct Placement {
  torch::Device device = torch::kCPU;
  bool bf16 = false;
};

Placement placement(const cli::Args& args) {
  Placement p;
  try {
    p.device = parse_device(args.get("device", "cpu"));
  } catch (const std::invalid_argument& e) {
    throw cli::UsageError(std::string("--device: ") + e.what());
  }
  if (p.device.is_cuda() && !p.device.has_index()) p.device = torch::Device(torch::kCUDA, 0);
  const std::string dtype = args.get("dtype", "float32");
  if (dtype != "float32" && dtype != "bfloat16") throw cli::UsageError("--dtype must be float32 or bfloat16");
  p.bf16 = dtype == "bfloat16";
  if (p.bf16 && !p.device.is_cuda()) throw cli::UsageError("--dtype bfloat16 is autocast on CUDA: add --device cuda");
  return p;
}

// Waits for the device's queued work: device time becomes host time.
void sync(torch::Device device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// The caching allocator's peak since the last reset_peak_memory on `device` (CUDA only; null
// on a CPU, where the allocator keeps no such count).
Json peak_memory_bytes(torch::Device device) {
#ifdef I3LAB_WITH_CUDA
  if (device.is_cuda()) return c10::cuda::CUDACachingAllocator::getDeviceStats(device.index()).allocated_bytes[0].peak;
#endif
  return nullptr;
}

// The GPU's name ("NVIDIA H100 80GB HBM3"), or "cpu".
std::string device_name(torch::Device device) {
#ifdef I3LAB_WITH_CUDA
  if (device.is_cuda()) return at::cuda::getDeviceProperties(device.index())->name;
#endif
  return device.str();
}

void reset_peak_memory(torch::Device device) {
#ifdef I3LAB_WITH_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.index());
#endif
}

// The matrix-multiply rate of this device now, in GFLOP/s, in the dtype the model's products
// run in: on a CPU, fp32 1024×512 · 512×2048, best of several; on a GPU, 8192³ products in
// bf16 or fp32 on random data (zeros run faster), the median of 10 after warm-up.
double measure_matmul_gflops(const Placement& p) {
  torch::NoGradGuard no_grad;
  if (!p.device.is_cuda()) {
    torch::Tensor a = torch::randn({1024, 512}), b = torch::randn({512, 2048});
    for (int i = 0; i < 3; ++i) torch::mm(a, b);
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      auto start = Clock::now();
      for (int i = 0; i < 10; ++i) torch::mm(a, b);
      best = std::max(best, 10 * 2.0 * 1024 * 512 * 2048 / seconds_since(start) / 1e9);
    }
    return best;
  }
  const int64_t n = 8192;
  const auto options = torch::TensorOptions().device(p.device).dtype(p.bf16 ? torch::kBFloat16 : torch::kFloat32);
  torch::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options), c = torch::empty({n, n}, options);
  for (int i = 0; i < 3; ++i) torch::mm_out(c, a, b);
  std::vector<double> rates;
  for (int rep = 0; rep < 10; ++rep) {
    sync(p.device);
    auto start = Clock::now();
    torch::mm_out(c, a, b);
    sync(p.device);
    rates.push_back(2.0 * n * n * n / seconds_since(start) / 1e9);
  }
  std::sort(rates.begin(), rates.end());
  return rates[rates.size() / 2];
}

// Matrix-product FLOPs of one forward+backward over B×T tokens: 6 per weight of every
// Linear (and the hybrid B, C projections) per token, plus attention's q·kᵀ and p·v
// (2·T·d each forward per token and layer, the full square as computed). Element-wise
// work and the small scan products are left out.
double fwd_bwd_flops(const ModelConfig& c, int64_t batch, int64_t seq) {
  const double d = c.d_model, f = c.ffn_mult * c.d_model, n = c.d_state, V = c.vocab_size;
  const double per_layer = 2 * d * f;
  const double matmul_params = c.n_layers() * per_layer + c.n_attn * 4 * d * d + c.n_hybrid * 2 * d * n + d * V;
  const double attention = c.n_attn * 2 * 2 * seq * d;
  return 3 * (2 * matmul_params + attention) * batch * seq;
}

ModelConfig bench_config(const cli::Args& args) {
  ModelConfig config = preset(args.get("preset", "i3-80m"));
  config.vocab_size = args.get_int("vocab-size", 35560, 1);
  for (const auto& s : args.get_all("set")) config.set(s);
  config.validate();
  return config;
}

// Times training steps on random tokens: forward+backward, plus gradient clipping and an
// AdamW update unless `optimizer` is "none" ("flat": FlatAdamW, "torch": torch::optim::AdamW,
// for comparison). Prints the median step and the matmul rate it achieves.
int bench_steps(const cli::Args& args, const std::string& what, const std::string& optimizer) {
  apply_threads(args);
  ModelConfig config = bench_config(args);
  const int64_t batch = args.get_int("batch", 4, 1), seq = args.get_int("seq", config.context, 1);
  const int64_t steps = args.get_int("steps", 3, 1), warmup = args.get_int("warmup", 1, 0);
  if (seq > config.context) throw cli::UsageError("--seq is longer than the context");
  if (optimizer != "none" && optimizer != "flat" && optimizer != "torch")
    throw cli::UsageError("--optimizer must be flat, torch or none");
  const std::string loss_kind = args.get("loss", "fused");
  if (loss_kind != "fused" && loss_kind != "torch") throw cli::UsageError("--loss must be fused or torch");
  const bool torch_loss = loss_kind == "torch";
  const Placement p = placement(args);
  torch::manual_seed(0);
  I3Model model(config);
  model->to(p.device);
  model->train();
  std::unique_ptr<FlatAdamW> flat;
  std::unique_ptr<torch::optim::AdamW> reference;
  if (optimizer == "flat") flat = std::make_unique<FlatAdamW>(model->state_dict(), AdamWOptions{});
  if (optimizer == "torch")
    reference = std::make_unique<torch::optim::AdamW>(model->parameters(), torch::optim::AdamWOptions(3e-4).weight_decay(0.01));
  torch::Tensor idx = torch::randint(config.vocab_size, {batch, seq}, torch::kLong).to(p.device);
  torch::Tensor targets = torch::randint(config.vocab_size, {batch, seq}, torch::kLong).to(p.device);
  const double matmul_gflops = measure_matmul_gflops(p);
  // --data-parallel: the same step as one rank of a data-parallel job (a process group of one,
  // NCCL on a GPU, Gloo on a CPU; gradients averaged in buckets during backward). Side by side
  // with a run without it, the cost of the process group when there is nothing to exchange.
  std::unique_ptr<DataParallel> dp;
  if (args.has("data-parallel")) {
    if (!flat) throw cli::UsageError("--data-parallel needs --optimizer flat");
    World alone;
    alone.master_addr = "127.0.0.1";
    alone.master_port = 0;  // rank 0 serves the store on a port the kernel picks
    alone.launcher = "bench";
    alone.store_prefix = "bench";
    dp = std::make_unique<DataParallel>(alone, DistributedConfig{}, p.device);
    dp->attach(*flat);
  }
  auto one_step = [&] {
    if (flat) flat->zero_grad();
    else model->zero_grad();
    torch::Tensor loss;
    {
      CudaBf16Autocast autocast(p.bf16);
      torch::Tensor logits = model->forward(idx);
      loss = torch_loss ? torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}))
                        : I3ModelImpl::loss(logits, targets);
    }
    if (dp) dp->begin_backward(/*last=*/true);
    loss.backward();
    if (dp) {
      torch::Tensor values = loss.detach().to(torch::kFloat64).view({1});
      dp->end_backward(values);
    }
    if (flat) {
      flat->clip_grad_norm(1.0);
      flat->step(3e-4);
    } else if (reference) {
      torch::nn::utils::clip_grad_norm_(model->parameters(), 1.0);
      reference->step();
    }
    sync(p.device);  // the trainer waits only at log steps; here every step is timed whole
  };
  std::vector<double> step_ms;
  for (int64_t i = 0; i < warmup + steps; ++i) {
    if (i == warmup) reset_peak_memory(p.device);
    auto start = Clock::now();
    one_step();
    if (i >= warmup) step_ms.push_back(seconds_since(start) * 1e3);
    std::cerr << "  step " << i + 1 << "/" << warmup + steps << (i < warmup ? " (warm-up)" : "") << ": "
              << seconds_since(start) * 1e3 << " ms\n";
  }
  if (args.has("trace")) {
    // One more step under LibTorch's profiler: a Chrome trace (chrome://tracing) by op.
    torch::autograd::profiler::RecordProfile profile(args.get("trace"));
    one_step();
  }
  std::sort(step_ms.begin(), step_ms.end());
  const double median_ms = step_ms[step_ms.size() / 2];
  const double gflop = fwd_bwd_flops(config, batch, seq) / 1e9;
  Json out;
  out["what"] = what;
  out["optimizer"] = optimizer;
  out["loss"] = loss_kind;
  out["preset"] = args.get("preset", "i3-80m");
  out["config"] = config.to_json();
  out["device"] = device_name(p.device);
  out["dtype"] = p.bf16 ? "bfloat16" : "float32";
  out["batch"] = batch;
  out["seq"] = seq;
  out["step_ms"] = median_ms;
  out["tokens_per_sec"] = batch * seq / (median_ms / 1e3);
  out["gflop_per_step"] = gflop;
  out["achieved_gflops"] = gflop / (median_ms / 1e3);
  out["matmul_gflops"] = matmul_gflops;
  out["mfu"] = gflop / (median_ms / 1e3) / matmul_gflops;
  out["peak_memory_bytes"] = peak_memory_bytes(p.device);
  if (dp) {
    const CommStats comm = dp->take_stats();
    out["data_parallel"] = {{"backend", dp->backend()},
                            {"comm_ms_per_step", comm.steps ? 1e3 * comm.seconds / comm.steps : 0.0},
                            {"exposed_ms_per_step", comm.steps ? 1e3 * comm.exposed_seconds / comm.steps : 0.0}};
  }
  out["runtime"] = runtime_summary();
  std::cout << (args.has("json") ? out.dump() : out.dump(2)) << "\n";
  return 0;
}

int bench_tokenizer(const cli::Args& args) {
  std::string text;
  if (args.has("file")) {
    text = util::read_file(args.get("file"), util::kNoSizeLimit);
  } else {
    // ~8 MB of made-up words from random syllables (some accented, some capitalised): a
    // vocabulary of thousands of chunks, like real text, rather than a handful.
    const char* syllables[] = {"the", "an", "ing", "ca", "fe", "lo", "mi", "ter", "s", "pa", "ri", "Ol", "du", "\u00e9", "ka", "no", "wh", "ee"};
    uint64_t x = 88172645463325252ull;
    auto next = [&x] { return x ^= x << 13, x ^= x >> 7, x ^= x << 17; };
    while (text.size() < (8u << 20)) {
      for (uint64_t n = 1 + next() % 4; n > 0; --n) text += syllables[next() % 18];
      text += next() % 10 == 0 ? ". " : " ";
    }
  }
  VocabBuilder builder;
  auto start = Clock::now();
  builder.add_text(text);
  const double build_s = seconds_since(start);
  ChunkTokenizer tok = builder.build();
  const int reps = static_cast<int>(args.get_int("reps", 3, 1, 1000));
  double best = 1e30;
  size_t n_ids = 0;
  for (int i = 0; i < reps; ++i) {
    start = Clock::now();
    n_ids = tok.encode(std::string_view(text)).size();
    best = std::min(best, seconds_since(start));
  }
  Json out;
  out["bytes"] = text.size();
  out["ids"] = n_ids;
  out["vocab_size"] = tok.vocab_size();
  out["encode_mb_per_sec"] = text.size() / best / 1e6;
  out["count_mb_per_sec"] = text.size() / build_s / 1e6;
  std::cout << (args.has("json") ? out.dump() : out.dump(2)) << "\n";
  return 0;
}

int bench_generate(const cli::Args& args) {
  apply_threads(args);
  ModelConfig config = bench_config(args);
  const int64_t prompt_len = args.get_int("prompt", 8, 1);
  const int64_t new_tokens = args.get_int("tokens", config.context - prompt_len, 0);
  // Default: one cycle of the half window (a re-read of ⌈context/2⌉ tokens, then incremental
  // steps until the window is full again): its amortised rate, and the sliding one to compare.
  const int64_t past = args.get_int("past", config.context - (config.context + 1) / 2 + 1, 0);
  // (get_int checked the minimums; the default --tokens is negative when --prompt alone is too long)
  if (prompt_len > config.context || prompt_len + new_tokens > config.context)
    throw cli::UsageError("--prompt + --tokens must fit in the context (" + std::to_string(config.context) + ")");
  const Placement p = placement(args);
  const auto batches = cli::parse_int_list(args.get("batch", "1"), "--batch");
  for (int64_t B : batches)
    if (B < 1) throw cli::UsageError("--batch takes sizes of at least 1");
  torch::manual_seed(0);
  I3Model model(config);
  model->to(p.device);
  CudaBf16Autocast autocast(p.bf16);
  std::vector<std::string> chunks = {ChunkTokenizer::kUnkToken};
  for (int64_t i = 1; i < config.vocab_size; ++i) chunks.push_back("t" + std::to_string(i));
  ChunkTokenizer tok(chunks);
  auto make_prompt = [&](int64_t length) {
    std::vector<int64_t> ids;
    for (int64_t i = 0; i < length; ++i) ids.push_back(1 + i % (config.vocab_size - 1));
    return ids;
  };
  {
    // Untimed: the first call pays for starting thread pools and growing the allocator.
    SamplingOptions warm_up;
    warm_up.max_new_tokens = 8;
    generate(model, tok, make_prompt(prompt_len), warm_up);
  }
  Json out;
  out["preset"] = args.get("preset", "i3-80m");
  out["device"] = device_name(p.device);
  out["dtype"] = p.bf16 ? "bfloat16" : "float32";
  out["prompt_tokens"] = prompt_len;
  out["new_tokens"] = new_tokens;
  sync(p.device);
  for (bool incremental : {true, false}) {
    SamplingOptions options;
    options.max_new_tokens = new_tokens;
    options.greedy = true;
    options.incremental = incremental;
    auto start = Clock::now();
    Generation g = generate(model, tok, make_prompt(prompt_len), options);
    out[incremental ? "incremental_tokens_per_sec" : "full_recompute_tokens_per_sec"] = g.ids.size() / seconds_since(start);
  }
  out["speedup"] = out["incremental_tokens_per_sec"].get<double>() / out["full_recompute_tokens_per_sec"].get<double>();
  // Batched greedy decoding as a server would run it: B sequences, the carried states, argmax
  // on the device, so nothing returns to the host per token; one wait at the end.
  for (int64_t B : batches) {
    torch::NoGradGuard no_grad;
    model->eval();
    const torch::Tensor prompt = torch::randint(1, config.vocab_size, {B, prompt_len}, torch::kLong).to(p.device);
    for (bool timed : {false, true}) {  // the first round warms the allocator up for this B
      reset_peak_memory(p.device);
      sync(p.device);
      auto start = Clock::now();
      DecodeState state;
      torch::Tensor next = model->last_logits(prompt, &state).argmax(-1, /*keepdim=*/true);  // [B,1]
      for (int64_t i = 1; i < new_tokens; ++i) next = model->last_logits(next, &state).argmax(-1, true);
      sync(p.device);
      if (!timed) continue;
      const std::string key = "batch_" + std::to_string(B);
      out[key + "_tokens_per_sec"] = B * new_tokens / seconds_since(start);
      out[key + "_peak_memory_bytes"] = peak_memory_bytes(p.device);
    }
  }
  if (past > 0) {
    // Past the context: the prompt fills the context, so the first new token is a prefill that
    // both modes share; the clock runs from its arrival over the next `past` tokens, each read
    // from a window that moved or grew.
    out["past_tokens"] = past;
    for (Window window : {Window::kHalf, Window::kSlide}) {
      SamplingOptions options;
      options.max_new_tokens = past + 1;
      options.greedy = true;
      options.window = window;
      Clock::time_point first;
      int64_t seen = 0;
      generate(model, tok, make_prompt(config.context), options, [&](int64_t) {
        if (seen++ == 0) first = Clock::now();
      });
      out[window == Window::kHalf ? "half_window_tokens_per_sec" : "slide_window_tokens_per_sec"] =
          past / seconds_since(first);
    }
    out["half_over_slide"] =
        out["half_window_tokens_per_sec"].get<double>() / out["slide_window_tokens_per_sec"].get<double>();
  }
  out["runtime"] = runtime_summary();
  std::cout << (args.has("json") ? out.dump() : out.dump(2)) << "\n";
  return 0;
}

}  // namespace

std::map<std::string, cli::Handler> bench_handlers() {
  return {
      {"bench model", [](const cli::Args& a) { return bench_steps(a, "forward+backward", "none"); }},
      {"bench train", [](const cli::Args& a) { return bench_steps(a, "train step", a.get("optimizer", "flat")); }},
      {"bench tokenizer", bench_tokenizer},
      {"bench generate", bench_generate},
  };
}

}  // namespace i3
