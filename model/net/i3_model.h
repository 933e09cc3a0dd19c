// The i3 hybrid language model (spec: i3-model.md §2), in LibTorch.
//
//   x = embed[idx] + pos_embed[0..T-1]                         idx [B,T] int64, T <= context
//   n_hybrid × { x += Hybrid(ln1(x));  x += FFN(ln2(x)) }
//   n_attn   × { x += CausalMHA(ln1(x)); x += FFN(ln2(x)) }
//   logits = head(ln_f(x))                                     [B,T,V], head untied, with bias
//                                                              (or [B,V]: last position only)
//
// Parameter names equal the published state dict's (`layers.3.hybrid.A`, `head.bias`, ...).
#pragma once

#include <torch/torch.h>

#include <vector>

#include "model/config/model_config.h"

namespace i3 {

// Recurrent state of one hybrid layer, carried between incremental calls.
struct HybridState {
  torch::Tensor h;  // [B,d]  moving average ("RWKV" mixing)
  torch::Tensor s;  // [B,n]  linear state ("Mamba" state)
};

// Keys and values of one attention layer for the positions seen so far.
struct KVCache {
  torch::Tensor k;  // [B,H,T_past,head_dim]
  torch::Tensor v;
};

// What incremental decoding carries: one entry per hybrid / attention layer, and the number of
// positions consumed (the position of the next token).
struct DecodeState {
  std::vector<HybridState> hybrid;
  std::vector<KVCache> kv;
  int64_t position = 0;
};

// The hybrid layer, a linear time-invariant system over t (states start at zero):
//   h_t = w ⊙ h_{t-1} + (1 − w) ⊙ u_t
//   s_t = s_{t-1} · Aᵀ + u_t · Bᵀ
//   y_t = s_t · Cᵀ + D ⊙ h_t
class HybridMixImpl : public torch::nn::Module {
 public:
  HybridMixImpl(int64_t d_model, int64_t d_state);
  // u [B,T,d] → y [B,T,d], computed in parallel over T with a doubling (Hillis–Steele) scan:
  // log2(T) steps, each exact, and a backward that is the same scan run backwards in time. On
  // a GPU in CUDA builds, float32 with d_state ≤ 32: sequential CUDA kernels (model/net/cuda/).
  // If `state` is non-null its tensors (when defined) are the states before u[:,0], and it
  // receives the states after u[:,T-1]. REQUIRES: no grad mode when `state` holds tensors.
  torch::Tensor forward(const torch::Tensor& u, HybridState* state = nullptr);
  // The per-token loop of the published code: the reference the scan is tested against.
  torch::Tensor forward_loop(const torch::Tensor& u);

  torch::Tensor w_mix, A, B, C, D;  // [d], [n,n], [n,d], [d,n], [d]
};
TORCH_MODULE(HybridMix);

class CausalSelfAttentionImpl : public torch::nn::Module {
 public:
  CausalSelfAttentionImpl(int64_t d_model, int64_t n_heads);
  // x [B,T,d] → [B,T,d]. With a cache, x holds the positions after the cached ones: they
  // attend to the cache and causally to each other, and the cache grows by T.
  torch::Tensor forward(const torch::Tensor& x, KVCache* cache = nullptr);

  torch::nn::Linear qkv{nullptr}, out_proj{nullptr};  // d → 3d (q, k, v in that order), d → d
  int64_t n_heads;
};
TORCH_MODULE(CausalSelfAttention);

// A pre-norm residual block holding either a hybrid layer or an attention layer.
class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& config, bool is_attention);
  torch::Tensor forward(torch::Tensor x, HybridState* hybrid_state, KVCache* cache);

  torch::nn::LayerNorm ln1{nullptr}, ln2{nullptr};
  HybridMix hybrid{nullptr};          // set in hybrid blocks
  CausalSelfAttention attn{nullptr};  // set in attention blocks
  torch::nn::Sequential ffn{nullptr}; // 0: Linear(d, ffn_mult·d), 1: GELU (erf), 2: Linear(ffn_mult·d, d)
};
TORCH_MODULE(Block);

class I3ModelImpl : public torch::nn::Module {
 public:
  // Builds the layers and initialises them as the spec says (N(0, 0.02) for Linear and
  // Embedding weights, zero biases, hybrid parameters as in §2.1) from the current torch
  // seed. REQUIRES: config.validate() passes.
  explicit I3ModelImpl(const ModelConfig& config);

  // idx [B,T] → logits [B,T,V], all positions in parallel.
  // Without a state the sequence starts at position 0 with zero states (training, scoring).
  // With one, idx continues the sequence in *state (empty for a new one), which is updated:
  // incremental decoding. REQUIRES: (state ? state->position : 0) + T <= context.
  torch::Tensor forward(const torch::Tensor& idx, DecodeState* state = nullptr);
  // idx [B,T] → logits [B,V] of the last position only: forward(idx, state)[:, T-1], with the
  // same REQUIRES and the same update of *state. All T positions still run through the layers
  // (they feed the states and caches), but ln_f and the head (d×V weights: a third of i3-80M's
  // per-token products) run for one position instead of T. For generation, which needs no more.
  torch::Tensor last_logits(const torch::Tensor& idx, DecodeState* state = nullptr);
  // Mean cross-entropy of logits [B,T,V] against targets [B,T].
  static torch::Tensor loss(const torch::Tensor& logits, const torch::Tensor& targets);

  // The state dict in the published order (embed, pos_embed, layers..., ln_f, head).
  std::vector<std::pair<std::string, torch::Tensor>> state_dict() const;

  const ModelConfig& config() const { return config_; }

  torch::nn::Embedding embed{nullptr}, pos_embed{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm ln_f{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  // Embeddings and layers: idx [B,T] → x [B,T,d] before ln_f. The contract of forward().
  torch::Tensor hidden(const torch::Tensor& idx, DecodeState* state);

  ModelConfig config_;
  std::vector<Block> blocks_;  // the same modules as `layers`, typed
};
TORCH_MODULE(I3Model);

// The name and shape of every tensor of I3Model(config)->state_dict(), in that order, without
// building the model: what a weights file must hold, checked before anything is allocated.
// REQUIRES: config.validate() passes.
std::vector<std::pair<std::string, std::vector<int64_t>>> parameter_shapes(const ModelConfig& config);

}  // namespace i3
