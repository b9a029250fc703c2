#!/usr/bin/env python3
"""Generate tests/fixtures/norm_torch.safetensors: a PyTorch state_dict with a
BatchNorm1d and a LayerNorm, buffers included, for tests/test_norm.c.

Usage:
    /usr/bin/python3 scripts/norm_fixtures.py [--out P]

The model (float32): bn = BatchNorm1d(3, momentum=0.3, eps=1e-3) with weight
(0.5, 1, 2) and bias (0.1, -0.2, 0.3), trained (forward in train mode) on
three batches x_k (2, 3, 2), x_k.flatten()[i] = sin(1.7 i + k) (1 + k),
k = 0, 1, 2; ln = LayerNorm(4) with weight (1, 2, 3, 4) / 4 and bias
(-0.1, 0, 0.1, 0.2). Its state_dict (bn.weight, bn.bias, bn.running_mean,
bn.running_var, bn.num_batches_tracked as int64, ln.weight, ln.bias) is
written with scripts/safetensors_lite.py, as safetensors.torch.save_file
would. Needs PyTorch and NumPy.
"""

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite  # noqa: E402


def build():
    m = torch.nn.Module()
    m.bn = torch.nn.BatchNorm1d(3, momentum=0.3, eps=1e-3)
    m.ln = torch.nn.LayerNorm(4)
    with torch.no_grad():
        m.bn.weight.copy_(torch.tensor([0.5, 1.0, 2.0]))
        m.bn.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
        m.ln.weight.copy_(torch.arange(1, 5, dtype=torch.float32) / 4)
        m.ln.bias.copy_(torch.tensor([-0.1, 0.0, 0.1, 0.2]))
        for k in range(3):
            x = (torch.sin(1.7 * torch.arange(12, dtype=torch.float64) + k) * (1 + k)).float().reshape(2, 3, 2)
            m.bn(x)
    return {k: v.numpy() for k, v in m.state_dict().items()}


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "norm_torch.safetensors"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    sd = build()
    safetensors_lite.write(args.out, sd, {"format": "pt"})
    print("torch %s: wrote %s (%s)" % (torch.__version__, args.out, ", ".join(sd)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
