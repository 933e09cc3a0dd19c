#!/usr/bin/env python3
"""Writes tests/data/python_i3/: a tiny i3 model folder made by PyTorch, as the published
release is laid out, for tests/model_folder_test.cc to load and check against.

  config.json                the published keys, with the published d_state bug (64 for 4)
  pytorch_model.bin          torch.save(model.state_dict()), the model's weights
  chunk_vocab_combined.json  a vocabulary written with json.dump, as the published tokenizer does
  expected.json              token ids and PyTorch's float32 logits for them

The model is bench/per_token_baseline.py's (published module names, per-token hybrid loop),
with weights scaled up from the tiny initialisation so that logits are of order one.
Regenerate with Debian's python3-torch: /usr/bin/python3 tests/data/make_python_i3.py
"""
import json
import os
import sys

import torch

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "..", "bench"))
from per_token_baseline import Model  # noqa: E402

out = os.path.join(here, "python_i3")
os.makedirs(out, exist_ok=True)
torch.manual_seed(1234)
V, d, heads, n, n_hybrid, n_attn, context = 12, 16, 2, 4, 2, 2, 16
model = Model(V, d, heads, n, n_hybrid, n_attn, context)
with torch.no_grad():
    for p in model.parameters():
        p.add_(torch.randn_like(p) * 0.3)
    for i in range(n_hybrid):
        model.layers[i].hybrid.w_mix.uniform_(0.2, 0.9)
        q, _ = torch.linalg.qr(torch.randn(n, n))
        model.layers[i].hybrid.A.copy_(q * 0.95)
torch.save(model.state_dict(), os.path.join(out, "pytorch_model.bin"))

config = {"architectures": ["i3Model"], "model_type": "i3", "vocab_size": V, "d_model": d,
          "n_layers": n_hybrid + n_attn, "n_heads": heads, "max_seq_len": context,
          "conv_layers": n_hybrid, "attn_layers": n_attn, "d_state": 64,
          "tokenizer_type": "chunk", "torch_dtype": "float32"}
with open(os.path.join(out, "config.json"), "w") as f:
    json.dump(config, f, indent=2)

chunks = ["<UNK>", " t", "e", " a", " u", "ce", "he", "her", "im", "llo", "on", "pon"]
vocab = {"chunk_to_idx": {c: i for i, c in enumerate(chunks)},
         "idx_to_chunk": {i: c for i, c in enumerate(chunks)},
         "vocab_size": len(chunks), "unk_token": "<UNK>", "unk_idx": 0}
with open(os.path.join(out, "chunk_vocab_combined.json"), "w") as f:
    json.dump(vocab, f)

ids = [6, 9, 1, 8, 2, 0, 10, 5, 4, 11, 3, 1, 7, 2]
with torch.no_grad():
    logits = model(torch.tensor([ids]))[0]
with open(os.path.join(out, "expected.json"), "w") as f:
    json.dump({"ids": ids, "logits": logits.tolist()}, f)
print("wrote", out)
