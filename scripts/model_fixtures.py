#!/usr/bin/env python3
"""Generate the model fixtures, float64, for tests/test_model_torch.c: the
convolutional VAE and the VQ-VAE of models/conv_vae.c and models/vq_vae.c as
PyTorch modules with the same parameter names, on small images, each a
state_dict plus a batch, the loss terms and PyTorch's gradients of every
parameter. tapegrad loads the state_dict by name (so the names and layouts
are PyTorch's) and must reproduce the terms and the gradients.

    tests/fixtures/conv_vae.safetensors   images 8 x 4, latent 3, batch 3:
        the state_dict; "x" (3, 32) in [0, 1]; "eps" (3, 3); "recon" (BCE
        with logits, summed), "kl" (closed form, summed); "grad.<param>" of
        recon + kl
    tests/fixtures/vq_vae.safetensors     images 8 x 8 (a 2 x 2 grid), 5 codes
        of 3, batch 3: the state_dict (codebook.weight included); "x" (3, 64);
        "codes" (3, 4) as float64; "recon", "codebook", "commitment";
        "grad.<param>" of recon + codebook + 0.25 commitment with the
        straight-through z_q = z_e + (e - z_e).detach(); the codebook set near
        five of the z_e vectors so that several codes are chosen

Usage:
    /usr/bin/python3 scripts/model_fixtures.py [--dir tests/fixtures]

Deterministic: torch.manual_seed(3) and (4).
"""

import argparse
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_lite  # noqa: E402


class ConvVAE(nn.Module):
    """models/conv_vae.c: rows x cols images, both divisible by 4."""

    def __init__(self, rows, cols, latent, hidden=256):
        super().__init__()
        self.rows, self.cols = rows, cols
        flat = 64 * (rows // 4) * (cols // 4)
        self.enc1 = nn.Conv2d(1, 32, 4, 2, 1)
        self.enc2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.fc1 = nn.Linear(flat, hidden)
        self.fc_mu, self.fc_logvar = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.fc2, self.fc3 = nn.Linear(latent, hidden), nn.Linear(hidden, flat)
        self.dec1 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.dec2 = nn.ConvTranspose2d(32, 1, 4, 2, 1)

    def encode(self, x):
        h = F.relu(self.enc2(F.relu(self.enc1(x.view(-1, 1, self.rows, self.cols)))))
        h = F.relu(self.fc1(h.flatten(1)))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode(self, z):
        h = F.relu(self.fc3(F.relu(self.fc2(z))))
        h = F.relu(self.dec1(h.view(-1, 64, self.rows // 4, self.cols // 4)))
        return self.dec2(h).flatten(1)

    def terms(self, x, eps):
        mu, logvar = self.encode(x)
        z = mu + torch.exp(logvar / 2) * eps
        recon = F.binary_cross_entropy_with_logits(self.decode(z), x, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu ** 2 - logvar.exp())
        return recon, kl


class VQVAE(nn.Module):
    """models/vq_vae.c: a (rows/4) x (cols/4) grid of code_dim vectors, codes codebook vectors."""

    def __init__(self, rows, cols, codes, code_dim):
        super().__init__()
        self.rows, self.cols = rows, cols
        self.enc1 = nn.Conv2d(1, 32, 4, 2, 1)
        self.enc2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.enc3 = nn.Conv2d(64, code_dim, 1)
        self.codebook = nn.Embedding(codes, code_dim)
        self.codebook.weight.data.uniform_(-1 / codes, 1 / codes)
        self.dec1 = nn.Conv2d(code_dim, 64, 1)
        self.dec2 = nn.ConvTranspose2d(64, 32, 4, 2, 1)
        self.dec3 = nn.ConvTranspose2d(32, 1, 4, 2, 1)
        # the per-position code prior tapegrad keeps for sampling (not used by the loss)
        self.register_buffer("code_prior", torch.full(((rows // 4) * (cols // 4), codes), 1.0 / codes))

    def terms(self, x):
        b = x.shape[0]
        z_e = self.enc3(F.relu(self.enc2(F.relu(self.enc1(x.view(-1, 1, self.rows, self.cols))))))
        zf = z_e.permute(0, 2, 3, 1).reshape(-1, z_e.shape[1])                 # (B G, D), grid row-major
        book = self.codebook.weight
        d = (zf.detach() ** 2).sum(1, keepdim=True) - 2 * zf.detach() @ book.detach().T + (book.detach() ** 2).sum(1)
        codes = d.argmin(1)
        e = self.codebook(codes)
        z_q = zf + (e - zf).detach()
        codebook = ((zf.detach() - e) ** 2).sum()
        commitment = ((zf - e.detach()) ** 2).sum()
        h = z_q.view(b, self.rows // 4, self.cols // 4, -1).permute(0, 3, 1, 2)
        logits = self.dec3(F.relu(self.dec2(F.relu(self.dec1(h))))).flatten(1)
        recon = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        return recon, codebook, commitment, codes.view(b, -1)


def save(path, model, tensors):
    for k, v in model.state_dict().items():
        tensors[k] = v.detach().numpy()
    for k, p in model.named_parameters():   # buffers have no gradient
        tensors["grad." + k] = p.grad.numpy()
    safetensors_lite.write(path, tensors, {"torch": torch.__version__})
    print("torch %s: wrote %s (%d bytes)" % (torch.__version__, path, os.path.getsize(path)))


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", default=os.path.join(root, "tests", "fixtures"))
    args = ap.parse_args()

    torch.manual_seed(3)
    m = ConvVAE(8, 4, 3).double()
    x = torch.rand(3, 32, dtype=torch.float64)
    eps = torch.randn(3, 3, dtype=torch.float64)
    recon, kl = m.terms(x, eps)
    (recon + kl).backward()
    save(os.path.join(args.dir, "conv_vae.safetensors"), m,
         {"x": x.numpy(), "eps": eps.numpy(), "recon": recon.detach().reshape(1).numpy(),
          "kl": kl.detach().reshape(1).numpy()})

    torch.manual_seed(4)
    m = VQVAE(8, 8, 5, 3).double()
    x = torch.rand(3, 64, dtype=torch.float64)
    with torch.no_grad():   # codebook vectors at the scale of z_e, so that several codes are chosen
        z_e = m.enc3(F.relu(m.enc2(F.relu(m.enc1(x.view(-1, 1, 8, 8))))))
        zf = z_e.permute(0, 2, 3, 1).reshape(-1, 3)
        m.codebook.weight.copy_(zf[[0, 2, 5, 7, 10]] + 0.005 * torch.randn(5, 3, dtype=torch.float64))
    recon, codebook, commitment, codes = m.terms(x)
    (recon + codebook + 0.25 * commitment).backward()
    save(os.path.join(args.dir, "vq_vae.safetensors"), m,
         {"x": x.numpy(), "codes": codes.double().numpy(), "recon": recon.detach().reshape(1).numpy(),
          "codebook": codebook.detach().reshape(1).numpy(), "commitment": commitment.detach().reshape(1).numpy()})
    print("codes used:", sorted(set(codes.flatten().tolist())))


if __name__ == "__main__":
    main()
