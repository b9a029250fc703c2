#!/usr/bin/env python3
"""Generate the layer and model fixtures, all float64:
tests/fixtures/conv_layers.safetensors (for tests/test_conv_layers.c): a
PyTorch state_dict of Conv2d and ConvTranspose2d layers under the names
tapegrad's nn layers use, an input, an upstream gradient, the output and
PyTorch's gradients; tests/fixtures/iwae.safetensors (for tests/test_iwae.c):
the reference VAE's state_dict (fc1, fc_mu, fc_logvar, fc2, fc3; 6 -> 5 -> 3),
a batch "x" (4, 6), the draws "eps" (k = 3, 4, 3), PyTorch's IWAE loss
"loss" (the negated k-sample bound summed over the batch) and "grad.<param>";
tests/fixtures/vq.safetensors (for tests/test_vq.c): "z_e" (7, 4), "book"
(5, 4), "up" (7, 4), the nearest codes "codes" (as float64), z_q, the
codebook and commitment losses, and the gradients "grad.z_e", "grad.book" of
L = sum(z_q * up) + codebook + 0.25 commitment (straight-through z_q).

Usage:
    /usr/bin/python3 scripts/layer_fixtures.py [--out PATH] [--iwae-out PATH]

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


class VAE(nn.Module):
    """The textbook VAE's module, small."""

    def __init__(self, d, h, l):
        super().__init__()
        self.fc1, self.fc_mu, self.fc_logvar = nn.Linear(d, h), nn.Linear(h, l), nn.Linear(h, l)
        self.fc2, self.fc3 = nn.Linear(l, h), nn.Linear(h, d)

    def iwae_loss(self, x, eps):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.exp(logvar / 2) * eps                      # (k, B, L)
        logits = self.fc3(F.relu(self.fc2(z)))                    # (k, B, D)
        log_px = -F.binary_cross_entropy_with_logits(logits, x.expand_as(logits), reduction="none").sum(-1)
        c = 0.5 * torch.log(torch.tensor(2 * torch.pi, dtype=x.dtype))
        log_pz = (-0.5 * z ** 2 - c).sum(-1)
        log_qz = (-0.5 * (eps ** 2 + logvar) - c).sum(-1)
        k = eps.shape[0]
        return -(torch.logsumexp(log_px + log_pz - log_qz, 0) - torch.log(torch.tensor(float(k), dtype=x.dtype))).sum()


def write_iwae(path):
    torch.manual_seed(11)
    vae = VAE(6, 5, 3).double()
    x = torch.rand(4, 6, dtype=torch.float64)
    eps = torch.randn(3, 4, 3, dtype=torch.float64)
    loss = vae.iwae_loss(x, eps)
    loss.backward()
    tensors = {k: v.detach().numpy() for k, v in vae.state_dict().items()}
    tensors["x"], tensors["eps"], tensors["loss"] = x.numpy(), eps.numpy(), loss.detach().reshape(1).numpy()
    for k, p in vae.named_parameters():
        tensors["grad." + k] = p.grad.numpy()
    safetensors_lite.write(path, tensors, {"torch": torch.__version__})
    print("torch %s: wrote %s (%d bytes, loss %.6f)" % (torch.__version__, path, os.path.getsize(path), loss.item()))


def write_vq(path):
    torch.manual_seed(5)
    z_e = torch.randn(7, 4, dtype=torch.float64, requires_grad=True)
    book = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    up = torch.rand(7, 4, dtype=torch.float64) * 2 - 1
    d = (z_e.detach() ** 2).sum(1, keepdim=True) - 2 * z_e.detach() @ book.detach().T + (book.detach() ** 2).sum(1)
    codes = d.argmin(1)
    e = F.embedding(codes, book)
    z_q = z_e + (e - z_e).detach()
    codebook = ((z_e.detach() - e) ** 2).sum()
    commitment = ((z_e - e.detach()) ** 2).sum()
    ((z_q * up).sum() + codebook + 0.25 * commitment).backward()
    tensors = {"z_e": z_e.detach().numpy(), "book": book.detach().numpy(), "up": up.numpy(),
               "codes": codes.double().numpy(), "z_q": z_q.detach().numpy(),
               "codebook": codebook.detach().reshape(1).numpy(), "commitment": commitment.detach().reshape(1).numpy(),
               "grad.z_e": z_e.grad.numpy(), "grad.book": book.grad.numpy()}
    safetensors_lite.write(path, tensors, {"torch": torch.__version__})
    print("torch %s: wrote %s (%d bytes, codes %s)" % (torch.__version__, path, os.path.getsize(path),
                                                      codes.tolist()))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "conv_layers.safetensors"))
    ap.add_argument("--iwae-out", default=os.path.join(root, "tests", "fixtures", "iwae.safetensors"))
    ap.add_argument("--vq-out", default=os.path.join(root, "tests", "fixtures", "vq.safetensors"))
    args = ap.parse_args()
    write_iwae(args.iwae_out)
    write_vq(args.vq_out)
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
