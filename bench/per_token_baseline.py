#!/usr/bin/env python3
"""Baseline for docs/benchmarks.md: the i3 model computed the way the published Python code
computes it -- the hybrid layer as a per-token loop -- written here from
../shared/spec/i3-model.md, timed like `i3lab bench model` (forward+backward on random tokens,
median step after a warm-up). Needs Debian's python3-torch; i3lab itself never uses Python.

usage: bench/per_token_baseline.py [--preset i3-80m|i3-demo] [--vocab-size V] [--batch B]
                                   [--seq T] [--steps K] [--threads N]
"""
import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # d_model, n_heads, d_state, n_hybrid, n_attn, context
    "i3-80m": (512, 16, 32, 10, 6, 256),
    "i3-demo": (128, 4, 16, 4, 2, 128),
}


class HybridLoop(nn.Module):
    def __init__(self, d, n):
        super().__init__()
        self.w_mix = nn.Parameter(torch.full((d,), 0.5))
        self.A = nn.Parameter(torch.randn(n, n) * 0.01)
        self.B = nn.Parameter(torch.randn(n, d) * 0.01)
        self.C = nn.Parameter(torch.randn(d, n) * 0.01)
        self.D = nn.Parameter(torch.full((d,), 0.1))

    def forward(self, u):  # u [B,T,d], one step per token
        h = u.new_zeros(u.shape[0], u.shape[2])
        s = u.new_zeros(u.shape[0], self.A.shape[0])
        ys = []
        for t in range(u.shape[1]):
            h = self.w_mix * h + (1 - self.w_mix) * u[:, t]
            s = s @ self.A.T + u[:, t] @ self.B.T
            ys.append(s @ self.C.T + h * self.D)
        return torch.stack(ys, 1)


class Attention(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = (t.view(B, T, self.heads, -1).transpose(1, 2) for t in self.qkv(x).chunk(3, -1))
        att = (q @ k.transpose(-2, -1)) / (q.shape[-1] ** 0.5)
        att = att.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return self.out_proj((att.softmax(-1) @ v).transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):
    # Attribute names (ln1, hybrid | attn, ln2, ffn.0/ffn.2) are the published state-dict names.
    def __init__(self, d, heads, n, attention):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        if attention:
            self.attn = Attention(d, heads)
        else:
            self.hybrid = HybridLoop(d, n)
        self.ln2 = nn.LayerNorm(d)
        self.ffn = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x):
        x = x + (self.attn if hasattr(self, "attn") else self.hybrid)(self.ln1(x))
        return x + self.ffn(self.ln2(x))


class Model(nn.Module):
    def __init__(self, V, d, heads, n, n_hybrid, n_attn, context):
        super().__init__()
        self.embed, self.pos_embed = nn.Embedding(V, d), nn.Embedding(context, d)
        self.layers = nn.ModuleList([Block(d, heads, n, i >= n_hybrid) for i in range(n_hybrid + n_attn)])
        self.ln_f, self.head = nn.LayerNorm(d), nn.Linear(d, V)

    def forward(self, idx):
        x = self.embed(idx) + self.pos_embed(torch.arange(idx.shape[1]))
        for layer in self.layers:
            x = layer(x)
        return self.head(self.ln_f(x))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="i3-80m", choices=PRESETS)
    p.add_argument("--vocab-size", type=int, default=35560)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq", type=int, default=0)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    d, heads, n, n_hybrid, n_attn, context = PRESETS[a.preset]
    seq = a.seq or context
    torch.manual_seed(0)
    model = Model(a.vocab_size, d, heads, n, n_hybrid, n_attn, context)
    idx = torch.randint(a.vocab_size, (a.batch, seq))
    targets = torch.randint(a.vocab_size, (a.batch, seq))
    times = []
    for i in range(1 + a.steps):
        start = time.perf_counter()
        model.zero_grad()
        F.cross_entropy(model(idx).view(-1, a.vocab_size), targets.view(-1)).backward()
        if i > 0:
            times.append(time.perf_counter() - start)
    step = sorted(times)[len(times) // 2]
    print(json.dumps({"what": "per-token-loop baseline, forward+backward", "preset": a.preset, "batch": a.batch,
                      "seq": seq, "threads": a.threads, "step_ms": step * 1e3,
                      "tokens_per_sec": a.batch * seq / step, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
