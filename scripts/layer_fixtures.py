#!/usr/bin/env python3
"""Generate tests/fixtures/conv_layers.safetensors: a PyTorch state_dict of
Conv2d and ConvTranspose2d layers under the names tapegrad's nn layers use,
an input, an upstream gradient, the output and PyTorch's gradients, all in
float64, for tests/test_conv_layers.c.

Usage:
    /usr/bin/python3 scripts/layer_fixtures.py [--out PATH]

The model (names as in the state_dict):
    enc.0  Conv2d(3, 4, (3, 2), stride (2, 1), padding (1, 0), dilation (1, 2))
    dec.0  ConvTranspose2d(4, 2, 4, stride 2, padding 1, output_padding 1)
    proj   Conv2d(2, 3, 1, bias=False)
    out = proj(relu(dec.0(relu(enc.0(x))))), x (2, 3, 9, 8)
Tensors besides the state_dict: "input", "up" (the upstream gradient),
"output", and "grad.<param>" = d sum(output * up) / d param, "grad.input".
Deterministic: torch.manual_seed(7).
"""

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite  # noqa: E402


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.ModuleList([nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2))])
        self.dec = nn.ModuleList([nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, output_padding=1)])
        self.proj = nn.Conv2d(2, 3, 1, bias=False)

    def forward(self, x):
        return self.proj(F.relu(self.dec[0](F.relu(self.enc[0](x)))))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "conv_layers.safetensors"))
    args = ap.parse_args()
    torch.manual_seed(7)
    net = Net().double()
    x = torch.randn(2, 3, 9, 8, dtype=torch.float64, requires_grad=True)
    out = net(x)
    up = torch.rand(out.shape, dtype=torch.float64) * 2 - 1
    (out * up).sum().backward()
    tensors = {k: v.detach().numpy() for k, v in net.state_dict().items()}
    tensors["input"] = x.detach().numpy()
    tensors["up"] = up.numpy()
    tensors["output"] = out.detach().numpy()
    for k, p in net.named_parameters():
        tensors["grad." + k] = p.grad.numpy()
    tensors["grad.input"] = x.grad.numpy()
    safetensors_lite.write(args.out, tensors, {"torch": torch.__version__})
    print("torch %s: wrote %s (%d bytes, output %s)" % (torch.__version__, args.out, os.path.getsize(args.out),
                                                       tuple(out.shape)))


if __name__ == "__main__":
    main()
