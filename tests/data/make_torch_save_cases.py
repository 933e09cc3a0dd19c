#!/usr/bin/env python3
"""Writes tests/data/torch_save/*.bin, small files made by Python's torch.save for
tests/torch_checkpoint_test.cc. Values are derived from torch.arange so the test can
recompute them. Regenerate with Debian's python3-torch:
  /usr/bin/python3 tests/data/make_torch_save_cases.py
"""
import collections
import os

import torch

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_save")
os.makedirs(out, exist_ok=True)

base = torch.arange(12, dtype=torch.float32).view(3, 4)
sd = collections.OrderedDict()
sd["weight"] = base.clone()                            # [[0..3],[4..7],[8..11]]
sd["transposed"] = base.t()                            # non-contiguous view of its own storage
sd["bf16"] = torch.arange(6, dtype=torch.bfloat16) / 4  # 0, .25, .5, ...
sd["ids"] = torch.arange(5, dtype=torch.int64) * -3     # 0, -3, -6, -9, -12
shared = torch.arange(10, dtype=torch.float64)
sd["shared_a"] = shared[2:5]                           # two views of one storage
sd["shared_b"] = shared[6:]
sd["scalar"] = torch.tensor(2.5)
sd["param"] = torch.nn.Parameter(torch.ones(2))        # saved through _rebuild_parameter
sd._metadata = collections.OrderedDict([("", {"version": 1})])
torch.save(sd, os.path.join(out, "state_dict.bin"))

torch.save({"model_state_dict": collections.OrderedDict([("w", torch.ones(3))]),
            "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 3e-4, "params": [0]}]},
            "config": {"d_model": 512, "name": "i3"}, "step": 5000, "loss": 1.98},
           os.path.join(out, "nested.bin"))


class Evil:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


torch.save({"w": Evil()}, os.path.join(out, "evil.bin"))
print("wrote", out)
