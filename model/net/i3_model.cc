#include "model/net/i3_model.h"

#include "model/net/cross_entropy.h"

#include <torch/version.h>

#include <cmath>

#ifdef I3LAB_WITH_CUDA_KERNELS
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "model/net/cuda/linear_scan.h"
#endif

namespace i3 {

// ---------------------------------------------------------------------------------------------
// Hybrid layer

HybridMixImpl::HybridMixImpl(int64_t d, int64_t n) {
  w_mix = register_parameter("w_mix", torch::full({d}, 0.5));
  A = register_parameter("A", torch::randn({n, n}) * 0.01);
  B = register_parameter("B", torch::randn({n, d}) * 0.01);
  C = register_parameter("C", torch::randn({d, n}) * 0.01);
  D = register_parameter("D", torch::full({d}, 0.1));
}

namespace {

// In-place doubling (Hillis–Steele) scan over dim 1 of x [B,T,c]:
//   forward:  x_t += decay(x_{t-1})   for t = 1..T-1, applied recursively
//   reverse:  x_t += decay(x_{t+1})   for t = T-2..0
// where decay is `x ⊙ w` (vector w [c]) or `x · M` (matrix M [c,c]). After the step with
// shift k every position holds the sum over its last 2k inputs weighted by the matching power
// of w or M; each step reads the values from before it (the right-hand side is materialised
// before the in-place add). No autograd: callers provide the backward.
void scan_(torch::Tensor& x, torch::Tensor step, bool is_matrix, bool reverse) {
  const int64_t T = x.size(1);
#ifdef I3LAB_WITH_CUDA_KERNELS
  // On a GPU, in float32 with a state of at most 32: the sequential kernels of model/net/cuda/.
  if (x.is_cuda() && x.scalar_type() == torch::kFloat && (!is_matrix || x.size(2) <= cuda::kMaxScanState)) {
    if (!x.is_contiguous()) x = x.contiguous();
    // The kernels' K multiplies a column vector; `step` multiplies row vectors from the right.
    const torch::Tensor K = (is_matrix ? step.t() : step).to(x.dtype()).contiguous();
    const c10::cuda::CUDAGuard on_device(x.device());
    const char* error = (is_matrix ? cuda::matrix_scan : cuda::diagonal_scan)(
        x.data_ptr<float>(), K.data_ptr<float>(), x.size(0), T, x.size(2), reverse,
        at::cuda::getCurrentCUDAStream().stream());
    TORCH_CHECK(error == nullptr, "hybrid layer scan kernel: ", error);
    return;
  }
#endif
  for (int64_t k = 1; k < T; k *= 2) {
    torch::Tensor src = x.narrow(1, reverse ? k : 0, T - k);
    torch::Tensor dst = x.narrow(1, reverse ? 0 : k, T - k);
    dst.add_(is_matrix ? torch::matmul(src, step) : src * step);
    if (2 * k < T) step = is_matrix ? torch::matmul(step, step) : step * step;
  }
}

// The two linear recurrences of the hybrid layer, differentiable:
//   h_t = w ⊙ h_{t-1} + a_t        a [B,T,d], w [d]
//   s_t = s_{t-1} · Aᵀ + b_t       b [B,T,n], A [n,n]        (h_{-1} = s_{-1} = 0)
// Backward, with λ the gradients of all later steps flowing back (a reverse scan):
//   λh_t = g_h_t + w ⊙ λh_{t+1},  dL/da = λh,  dL/dw = Σ_{b,t} λh_t ⊙ h_{t-1}
//   λs_t = g_s_t + λs_{t+1} · A,  dL/db = λs,  dL/dA = Σ_{b,t} λs_tᵀ · s_{t-1}
struct LinearRecurrences : public torch::autograd::Function<LinearRecurrences> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a,
                                                const torch::Tensor& b, const torch::Tensor& w, const torch::Tensor& A) {
    torch::Tensor h = a.clone(), s = b.clone();
    scan_(h, w, /*is_matrix=*/false, /*reverse=*/false);
    scan_(s, A.t(), /*is_matrix=*/true, /*reverse=*/false);
    ctx->save_for_backward({h, s, w, A});
    return {h, s};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const torch::Tensor &h = saved[0], &s = saved[1], &w = saved[2], &A = saved[3];
    const int64_t T = h.size(1), n = s.size(2);
    torch::Tensor lh = grads[0].defined() ? grads[0].clone() : torch::zeros_like(h);
    torch::Tensor ls = grads[1].defined() ? grads[1].clone() : torch::zeros_like(s);
    scan_(lh, w, /*is_matrix=*/false, /*reverse=*/true);
    scan_(ls, A, /*is_matrix=*/true, /*reverse=*/true);
    torch::Tensor grad_w = torch::zeros_like(w), grad_A = torch::zeros_like(A);
    if (T > 1) {
      grad_w = (lh.narrow(1, 1, T - 1) * h.narrow(1, 0, T - 1)).sum(torch::IntArrayRef{0, 1});
      grad_A = torch::matmul(ls.narrow(1, 1, T - 1).reshape({-1, n}).t(), s.narrow(1, 0, T - 1).reshape({-1, n}));
    }
    return {lh, ls, grad_w, grad_A};
  }
};

}  // namespace

torch::Tensor HybridMixImpl::forward(const torch::Tensor& u_in, HybridState* state) {
  // The recurrences run in float32 even under bf16 autocast: hundreds of steps of w·h
  // accumulate rounding error that bf16's 8-bit mantissa does not survive.
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::autocast_dispatch_keyset);
  const torch::Tensor u = u_in.to(w_mix.scalar_type());
  const int64_t T = u.size(1);
  torch::Tensor a = (1 - w_mix) * u;          // [B,T,d]
  torch::Tensor b = torch::matmul(u, B.t());  // [B,T,n]
  torch::Tensor h, s;
  if (state && state->h.defined()) {
    // Decoding (no gradients): fold the carried states into step 0,
    // h_0 = w ⊙ h_prev + a_0 and s_0 = s_prev · Aᵀ + b_0, then scan in place.
    TORCH_CHECK(!torch::GradMode::is_enabled(), "carrying a hybrid state is for inference only");
    h = a.clone();
    s = b.clone();
    h.select(1, 0).add_(w_mix * state->h);
    s.select(1, 0).add_(torch::matmul(state->s, A.t()));
    scan_(h, w_mix, false, false);
    scan_(s, A.t(), true, false);
  } else {
    auto hs = LinearRecurrences::apply(a, b, w_mix, A);
    h = hs[0];
    s = hs[1];
  }
  if (state) {
    state->h = h.select(1, T - 1);  // [B,d]
    state->s = s.select(1, T - 1);  // [B,n]
  }
  return torch::matmul(s, C.t()) + D * h;  // [B,T,d]
}

torch::Tensor HybridMixImpl::forward_loop(const torch::Tensor& u) {
  const int64_t batch = u.size(0), T = u.size(1);
  torch::Tensor h = torch::zeros({batch, u.size(2)}, u.options());
  torch::Tensor s = torch::zeros({batch, A.size(0)}, u.options());
  std::vector<torch::Tensor> ys;
  for (int64_t t = 0; t < T; ++t) {
    torch::Tensor u_t = u.select(1, t);
    h = w_mix * h + (1 - w_mix) * u_t;
    s = torch::matmul(s, A.t()) + torch::matmul(u_t, B.t());
    ys.push_back(torch::matmul(s, C.t()) + h * D);
  }
  return torch::stack(ys, 1);
}

// ---------------------------------------------------------------------------------------------
// Causal self-attention

CausalSelfAttentionImpl::CausalSelfAttentionImpl(int64_t d, int64_t heads) : n_heads(heads) {
  qkv = register_module("qkv", torch::nn::Linear(d, 3 * d));
  out_proj = register_module("out_proj", torch::nn::Linear(d, d));
}

torch::Tensor CausalSelfAttentionImpl::forward(const torch::Tensor& x, KVCache* cache) {
  const int64_t batch = x.size(0), T = x.size(1), d = x.size(2), hd = d / n_heads;
  auto split = qkv->forward(x).chunk(3, -1);  // q, k, v: [B,T,d]
  auto heads = [&](const torch::Tensor& t) { return t.view({batch, T, n_heads, hd}).transpose(1, 2); };
  torch::Tensor q = heads(split[0]), k = heads(split[1]), v = heads(split[2]);  // [B,H,T,hd]
  int64_t past = 0;
  if (cache) {
    if (cache->k.defined()) {
      past = cache->k.size(2);
      k = torch::cat({cache->k, k}, 2);  // [B,H,past+T,hd]
      v = torch::cat({cache->v, v}, 2);
    }
    cache->k = k;
    cache->v = v;
  }
  torch::Tensor out;
#if TORCH_VERSION_MAJOR >= 2
  if (past == 0 || T == 1) {
    // Fused kernel: causal over a fresh sequence, or one new query that sees every key.
    out = at::scaled_dot_product_attention(q, k, v, {}, 0.0, /*is_causal=*/past == 0 && T > 1);
  }
#endif
  if (!out.defined()) {
    const int64_t S = past + T, BH = batch * n_heads;
    // Query i sits at position past+i and may see keys 0..past+i: an additive mask, −inf above.
    torch::Tensor mask = torch::full({T, S}, -std::numeric_limits<float>::infinity(), q.options()).triu(past + 1);
    // One product computes mask + scale · q·kᵀ: no separate scaling or masking pass.
    torch::Tensor scores = torch::baddbmm(mask, q.reshape({BH, T, hd}), k.reshape({BH, S, hd}).transpose(1, 2),
                                          /*beta=*/1, /*alpha=*/1.0 / std::sqrt(static_cast<double>(hd)));  // [BH,T,S]
    out = torch::bmm(torch::softmax(scores, -1), v.reshape({BH, S, hd})).view({batch, n_heads, T, hd});
  }
  return out_proj->forward(out.transpose(1, 2).contiguous().view({batch, T, d}));
}

// ---------------------------------------------------------------------------------------------
// Blocks and the model

BlockImpl::BlockImpl(const ModelConfig& c, bool is_attention) {
  auto norm = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.d_model}).eps(1e-5)); };
  // Registration order follows the published module, so state dicts list tensors alike.
  ln1 = register_module("ln1", norm());
  if (is_attention) {
    attn = register_module("attn", CausalSelfAttention(c.d_model, c.n_heads));
  } else {
    hybrid = register_module("hybrid", HybridMix(c.d_model, c.d_state));
  }
  ln2 = register_module("ln2", norm());
  const int64_t hidden = c.ffn_mult * c.d_model;
  ffn = register_module("ffn", torch::nn::Sequential(torch::nn::Linear(c.d_model, hidden),
                                                     torch::nn::GELU(torch::nn::GELUOptions().approximate("none")),
                                                     torch::nn::Linear(hidden, c.d_model)));
}

torch::Tensor BlockImpl::forward(torch::Tensor x, HybridState* hybrid_state, KVCache* cache) {
  if (attn) {
    x = x + attn->forward(ln1->forward(x), cache);
  } else {
    x = x + hybrid->forward(ln1->forward(x), hybrid_state);
  }
  return x + ffn->forward(ln2->forward(x));
}

std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(const ModelConfig& c) {
  const int64_t V = c.vocab_size, d = c.d_model, n = c.d_state, f = c.ffn_mult * c.d_model;
  std::vector<std::pair<std::string, std::vector<int64_t>>> out = {{"embed.weight", {V, d}},
                                                                    {"pos_embed.weight", {c.context, d}}};
  for (int64_t i = 0; i < c.n_layers(); ++i) {
    const std::string l = "layers." + std::to_string(i) + ".";
    out.push_back({l + "ln1.weight", {d}});
    out.push_back({l + "ln1.bias", {d}});
    if (i >= c.n_hybrid) {
      out.push_back({l + "attn.qkv.weight", {3 * d, d}});
      out.push_back({l + "attn.qkv.bias", {3 * d}});
      out.push_back({l + "attn.out_proj.weight", {d, d}});
      out.push_back({l + "attn.out_proj.bias", {d}});
    } else {
      out.push_back({l + "hybrid.w_mix", {d}});
      out.push_back({l + "hybrid.A", {n, n}});
      out.push_back({l + "hybrid.B", {n, d}});
      out.push_back({l + "hybrid.C", {d, n}});
      out.push_back({l + "hybrid.D", {d}});
    }
    out.push_back({l + "ln2.weight", {d}});
    out.push_back({l + "ln2.bias", {d}});
    out.push_back({l + "ffn.0.weight", {f, d}});
    out.push_back({l + "ffn.0.bias", {f}});
    out.push_back({l + "ffn.2.weight", {d, f}});
    out.push_back({l + "ffn.2.bias", {d}});
  }
  out.push_back({"ln_f.weight", {d}});
  out.push_back({"ln_f.bias", {d}});
  out.push_back({"head.weight", {V, d}});
  out.push_back({"head.bias", {V}});
  return out;
}

I3ModelImpl::I3ModelImpl(const ModelConfig& config) : config_(config) {
  config_.validate();
  embed = register_module("embed", torch::nn::Embedding(config.vocab_size, config.d_model));
  pos_embed = register_module("pos_embed", torch::nn::Embedding(config.context, config.d_model));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.n_layers(); ++i) {
    Block block(config, /*is_attention=*/i >= config.n_hybrid);
    layers->push_back(block);
    blocks_.push_back(block);
  }
  ln_f = register_module("ln_f", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model}).eps(1e-5)));
  head = register_module("head", torch::nn::Linear(config.d_model, config.vocab_size));

  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<torch::nn::Linear>()) {
      linear->weight.normal_(0.0, 0.02);
      linear->bias.zero_();
    } else if (auto* embedding = module->as<torch::nn::Embedding>()) {
      embedding->weight.normal_(0.0, 0.02);
    }
  }
}

torch::Tensor I3ModelImpl::hidden(const torch::Tensor& idx, DecodeState* state) {
  const int64_t T = idx.size(1);
  const int64_t start = state ? state->position : 0;
  TORCH_CHECK(start + T <= config_.context, "sequence of ", start + T, " tokens exceeds the context of ",
              config_.context);
  if (state && state->hybrid.empty()) {
    state->hybrid.resize(config_.n_hybrid);
    state->kv.resize(config_.n_attn);
  }
  torch::Tensor pos = torch::arange(start, start + T, torch::TensorOptions().dtype(torch::kLong).device(idx.device()));
  torch::Tensor x = embed->forward(idx) + pos_embed->forward(pos);  // [B,T,d]
  for (int64_t i = 0; i < config_.n_layers(); ++i) {
    const bool is_attention = i >= config_.n_hybrid;
    HybridState* hs = state && !is_attention ? &state->hybrid[i] : nullptr;
    KVCache* kv = state && is_attention ? &state->kv[i - config_.n_hybrid] : nullptr;
    x = blocks_[i]->forward(x, hs, kv);
  }
  if (state) state->position += T;
  return x;  // [B,T,d]
}

torch::Tensor I3ModelImpl::forward(const torch::Tensor& idx, DecodeState* state) {
  return head->forward(ln_f->forward(hidden(idx, state)));  // [B,T,V]
}

torch::Tensor I3ModelImpl::last_logits(const torch::Tensor& idx, DecodeState* state) {
  return head->forward(ln_f->forward(hidden(idx, state).select(1, -1)));  // [B,d] → [B,V]
}

torch::Tensor I3ModelImpl::loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  return cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

std::vector<std::pair<std::string, torch::Tensor>> I3ModelImpl::state_dict() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : named_parameters(/*recurse=*/true)) out.emplace_back(item.key(), item.value());
  return out;
}

}  // namespace i3
