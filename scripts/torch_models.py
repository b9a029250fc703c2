#!/usr/bin/env python3
r"""PyTorch twins of tapegrad's VAE family, for side-by-side quality figures.

Trains one model on Fashion-MNIST (or MNIST: any directory holding
{train,t10k}-images-idx3-ubyte[.gz]) and measures it on the test set:

    /usr/bin/python3 scripts/torch_models.py --model conv-vae --seed 1 \
        --epochs 10 --threads 1 --out runs/torch_conv-vae_s1

Data: gray pixels / 255 as float32 in [0, 1], not binarised (bench/torch_vae.py's
reader). Training: the 60000 training images reshuffled every epoch (a
torch.Generator seeded with --seed), batch 128, Adam lr 1e-3; weights and
noise from torch.manual_seed(--seed). All losses are sums over the batch;
the figures are nats per image.

The models. Parameter names are those of tapegrad's models, so a
model.safetensors written here loads into tapegrad and back (strict
state_dict). L = --latent (20).

  vae       fc1 Linear(784, 400) -> ReLU -> fc_mu, fc_logvar Linear(400, L);
            fc2 Linear(L, 400) -> ReLU -> fc3 Linear(400, 784) -> Bernoulli
            logits (bench/torch_vae.py's network). Loss: BCE with logits
            (sum) + closed-form KL to N(0, I), one z sample per image.
  iwae      the same networks; loss: the k-sample importance-weighted bound
            (Burda et al.), -sum_b [logsumexp_i log w_bi - log k],
            log w = log p(x|z) + log p(z) - log q(z|x), k = --k (5).
  conv-vae  enc1 Conv2d(1, 32, 4, 2, 1) -> ReLU -> enc2 Conv2d(32, 64, 4, 2, 1)
            -> ReLU -> flatten 3136 (C, H, W) -> fc1 Linear(3136, 256) -> ReLU
            -> fc_mu, fc_logvar Linear(256, L); fc2 Linear(L, 256) -> ReLU ->
            fc3 Linear(256, 3136) -> ReLU -> (64, 7, 7) -> dec1
            ConvTranspose2d(64, 32, 4, 2, 1) -> ReLU -> dec2
            ConvTranspose2d(32, 1, 4, 2, 1) -> logits. Loss as vae.
  vq-vae    enc1, enc2 as conv-vae -> enc3 Conv2d(64, 16, 1) -> z_e (B, 16, 7, 7);
            each of the 49 16-d vectors (channels last) is replaced by the
            nearest of 64 codebook vectors codebook.weight (64, 16), init
            uniform(-1/64, 1/64), squared L2, first index on ties;
            straight-through z_q = z_e + sg(e - z_e); dec1 Conv2d(16, 64, 1)
            -> ReLU -> dec2 ConvTranspose2d(64, 32, 4, 2, 1) -> ReLU -> dec3
            ConvTranspose2d(32, 1, 4, 2, 1) -> logits. Loss: BCE (sum) +
            sum ||sg(z_e) - e||^2 + 0.25 sum ||z_e - sg(e)||^2.
PyTorch's default initialisation everywhere except the codebook.

Test-set figures (all 10000 test images unless said):
  vae, iwae, conv-vae: neg_elbo, recon, kl (one z sample per image);
      nll: -log p(x) importance-sampled with K = --iw (1000) samples on the
      first --iw-images (2000) test images, decoded in chunks of --chunk
      (image, sample) pairs so memory does not grow with K;
      active_units: latent dims whose unbiased variance of mu over the test
      set exceeds 0.01.
  iwae also: neg_iwae (the k-sample bound, -IWAE5 for k = 5).
  vq-vae: bce, codebook, commitment (per image), codes_used (distinct codes
      over the test set), perplexity exp(H) of the test set's code usage,
      bits_per_image 49 log2(64).
  s_per_epoch: the mean wall time of a training epoch (training only).

Output: one line
    RESULT model=M seed=S key=value ...
and OUT/model.safetensors (float32 state_dict, scripts/safetensors_lite.py;
metadata: format "tapegrad-torch-<model>" and the run's settings as JSON),
OUT/result.json (the figures, per-epoch train loss and time, settings).

Threads and BLAS: --threads T sets torch.set_num_threads(T),
OPENBLAS_NUM_THREADS=T and OMP_NUM_THREADS=T (and OMP_WAIT_POLICY=PASSIVE
unless set) before torch loads, as bench/torch_vae.py. --coretype sets
OPENBLAS_CORETYPE before torch loads: "cpu" (default) picks SkylakeX on
AVX-512 CPUs and Haswell on AVX2 ones (bench/torch_conv.py's choice) unless
the environment already sets it; "auto" leaves it to OpenBLAS; any other
value is used as is. --convt chooses how the transposed convolutions run:
"stock" (nn.ConvTranspose2d's forward) or "conv2d_input" (default: the same
operation as the input gradient of conv2d, torch.nn.grad.conv2d_input, with
conv2d and conv2d_weight as its backward, as in bench/torch_conv.py); the
parameters are nn.ConvTranspose2d's either way (weight (in, out, kh, kw)),
and both give the same outputs and gradients. oneDNN stays on (--no-mkldnn
turns it off).

Why these defaults: PyTorch 1.13 (Debian's, OpenBLAS) at 1 thread on a 2-core
AVX-512 Xeon, median ms per training step of batch 128 (--time-steps 40,
best of two rounds on a shared machine):

    model      OpenBLAS core  stock convT  conv2d_input
    conv-vae   own choice        146           95
    conv-vae   SkylakeX           73           59
    vq-vae     own choice         87           39
    vq-vae     SkylakeX           51           38
    vae        own / SkylakeX / Haswell: 17.9 / 6.7 / 9.2
    iwae       own / SkylakeX / Haswell: 110 / 41 / 56

OpenBLAS left to itself picks slower kernels on this CPU, and without oneDNN
every conv model was 1.5-3x slower. The reference figures were made with
--threads 1, OPENBLAS_CORETYPE=SkylakeX, conv2d_input, oneDNN on.

--time-steps N only times N training steps (after 3 warm-up steps) with the
given settings, prints `TIME ... median_ms=... min_ms=...` and exits.
"""

import argparse
import json
import math
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MODELS = ("vae", "iwae", "conv-vae", "vq-vae")


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="PyTorch twins of tapegrad's VAE family: train and measure one")
    ap.add_argument("--model", required=True, choices=MODELS)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--threads", type=int, default=1, help="threads for torch and its BLAS (default 1)")
    ap.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                    help="directory with {train,t10k}-images-idx3-ubyte[.gz] (default %(default)s)")
    ap.add_argument("--out", help="output directory (model.safetensors, result.json)")
    ap.add_argument("--k", type=int, default=5, help="iwae: samples per image in the training bound (default 5)")
    ap.add_argument("--latent", type=int, default=20, help="latent size of vae, iwae, conv-vae (default 20)")
    ap.add_argument("--iw", type=int, default=1000, help="importance samples for the test nll (default 1000)")
    ap.add_argument("--iw-images", type=int, default=2000, help="first test images for the nll (default 2000)")
    ap.add_argument("--chunk", type=int, default=1000, help="(image, sample) pairs decoded at a time (default 1000)")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--coretype", default="cpu",
                    help="OPENBLAS_CORETYPE: cpu (default: SkylakeX/Haswell by the CPU's flags), auto (OpenBLAS's "
                         "own choice), or a core name")
    ap.add_argument("--convt", default="conv2d_input", choices=("stock", "conv2d_input"),
                    help="how the transposed convolutions run (default conv2d_input)")
    ap.add_argument("--no-mkldnn", action="store_true", help="run convolutions without oneDNN")
    ap.add_argument("--flush-denormal", action="store_true",
                    help="torch.set_flush_denormal(True): subnormal floats become zero, as in tapegrad's Adam step")
    ap.add_argument("--time-steps", type=int, default=0, help="only time this many training steps")
    args = ap.parse_args(argv)
    if not args.out and not args.time_steps:
        ap.error("--out is required")
    return args


def cpu_coretype():
    """SkylakeX on AVX-512 CPUs, Haswell on AVX2 ones, else None: bench/torch_conv.py's
    choice (that module imports torch only in its workers, so importing it here,
    before torch is loaded, leaves OPENBLAS_CORETYPE still ours to set)."""
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from torch_conv import cpu_coretype as probe
    return probe()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # Before torch loads: OpenBLAS reads its thread count and core type then.
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if ARGS.coretype == "cpu":
        if "OPENBLAS_CORETYPE" not in os.environ and cpu_coretype():
            os.environ["OPENBLAS_CORETYPE"] = cpu_coretype()
    elif ARGS.coretype == "auto":
        os.environ.pop("OPENBLAS_CORETYPE", None)
    else:
        os.environ["OPENBLAS_CORETYPE"] = ARGS.coretype
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, HERE)

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn, optim  # noqa: E402
from torch.nn.grad import conv2d_input, conv2d_weight  # noqa: E402

import safetensors_lite  # noqa: E402
import torch_vae  # noqa: E402

CONVT = "conv2d_input"   # set from --convt in main()


# --------------------------------------------------------------------------
# Transposed convolution through conv2d's input gradient
# --------------------------------------------------------------------------

class _ConvTFn(torch.autograd.Function):
    """conv_transpose2d(x, w, b, stride, padding) as conv2d_input with weight w
    (w (in, out, kh, kw) is a conv2d weight from out to in channels);
    backward: conv2d (dx), conv2d_weight (dw), a sum (db)."""

    @staticmethod
    def forward(ctx, x, w, b, stride, padding):
        ctx.save_for_backward(x, w)
        ctx.geom = (stride, padding)
        ho = (x.shape[2] - 1) * stride - 2 * padding + w.shape[2]
        wo = (x.shape[3] - 1) * stride - 2 * padding + w.shape[3]
        y = conv2d_input((x.shape[0], w.shape[1], ho, wo), w, x, stride, padding)
        return y.add_(b.view(1, -1, 1, 1))

    @staticmethod
    def backward(ctx, dy):
        x, w = ctx.saved_tensors
        s, p = ctx.geom
        dx = F.conv2d(dy, w, None, s, p) if ctx.needs_input_grad[0] else None
        dw = conv2d_weight(dy, w.shape, x, s, p) if ctx.needs_input_grad[1] else None
        return dx, dw, dy.sum((0, 2, 3)), None, None


class ConvT(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (same parameters, names, initialisation) whose
    forward follows --convt."""

    def forward(self, x):
        if CONVT == "stock":
            return super().forward(x)
        return _ConvTFn.apply(x, self.weight, self.bias, self.stride[0], self.padding[0])


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

class MLPVAE(nn.Module):
    """784-400-L, bench/torch_vae.py's networks, decoding to logits."""

    def __init__(self, latent=20, d=784, h=400):
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.fc_mu = nn.Linear(h, latent)
        self.fc_logvar = nn.Linear(h, latent)
        self.fc2 = nn.Linear(latent, h)
        self.fc3 = nn.Linear(h, d)

    def encode(self, x):
        h = F.relu(self.fc1(x.reshape(x.shape[0], -1)))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_logits(self, z):
        """z (..., L) -> logits (..., 784)."""
        return self.fc3(F.relu(self.fc2(z)))


class ConvVAE(nn.Module):
    def __init__(self, latent=20):
        super().__init__()
        self.enc1 = nn.Conv2d(1, 32, 4, 2, 1)
        self.enc2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.fc1 = nn.Linear(3136, 256)
        self.fc_mu = nn.Linear(256, latent)
        self.fc_logvar = nn.Linear(256, latent)
        self.fc2 = nn.Linear(latent, 256)
        self.fc3 = nn.Linear(256, 3136)
        self.dec1 = ConvT(64, 32, 4, 2, 1)
        self.dec2 = ConvT(32, 1, 4, 2, 1)

    def encode(self, x):
        h = F.relu(self.enc2(F.relu(self.enc1(x.reshape(-1, 1, 28, 28)))))
        h = F.relu(self.fc1(h.flatten(1)))
        return self.fc_mu(h), self.fc_logvar(h)

    def decode_logits(self, z):
        """z (..., L) -> logits (..., 784)."""
        lead = z.shape[:-1]
        h = F.relu(self.fc3(F.relu(self.fc2(z.reshape(-1, z.shape[-1])))))
        y = self.dec2(F.relu(self.dec1(h.view(-1, 64, 7, 7))))
        return y.reshape(*lead, 784)


class VQVAE(nn.Module):
    def __init__(self, codes=64, dim=16):
        super().__init__()
        self.enc1 = nn.Conv2d(1, 32, 4, 2, 1)
        self.enc2 = nn.Conv2d(32, 64, 4, 2, 1)
        self.enc3 = nn.Conv2d(64, dim, 1)
        self.codebook = nn.Embedding(codes, dim)
        with torch.no_grad():
            self.codebook.weight.uniform_(-1.0 / codes, 1.0 / codes)
        self.dec1 = nn.Conv2d(dim, 64, 1)
        self.dec2 = ConvT(64, 32, 4, 2, 1)
        self.dec3 = ConvT(32, 1, 4, 2, 1)

    def forward(self, x):
        """-> logits (B, 784), codes (B*49), codebook loss, commitment loss (sums)."""
        b = x.shape[0]
        z = self.enc3(F.relu(self.enc2(F.relu(self.enc1(x.reshape(-1, 1, 28, 28))))))   # (B, 16, 7, 7)
        d = z.shape[1]
        z_e = z.permute(0, 2, 3, 1).reshape(-1, d)                                       # (B*49, 16)
        book = self.codebook.weight
        ze = z_e.detach()
        dist = (ze * ze).sum(1, keepdim=True) - 2 * ze @ book.detach().t() + (book.detach() ** 2).sum(1)
        codes = dist.argmin(1)                    # first index on ties
        e = F.embedding(codes, book)
        codebook = ((ze - e) ** 2).sum()
        commitment = ((z_e - e.detach()) ** 2).sum()
        z_q = z_e + (e - z_e).detach()
        h = z_q.view(b, 7, 7, d).permute(0, 3, 1, 2)
        y = self.dec3(F.relu(self.dec2(F.relu(self.dec1(h)))))
        return y.reshape(b, 784), codes, codebook, commitment


def bce_sum(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum")


def kl_rows(mu, logvar):
    return -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1)


def vae_terms(model, x):
    """One z sample per image: (recon (B), kl (B), mu)."""
    mu, logvar = model.encode(x)
    z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
    logits = model.decode_logits(z)
    recon = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(1)
    return recon, kl_rows(mu, logvar), mu


def log_weights(model, x, mu, logvar, eps):
    """eps (N, S, L) -> log w (N, S) = log p(x|z) + log p(z) - log q(z|x); the
    Gaussians' constants cancel ((z - mu)^2 / sigma^2 = eps^2)."""
    z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
    logits = model.decode_logits(z)
    lpx = -F.binary_cross_entropy_with_logits(logits, x.unsqueeze(1).expand_as(logits), reduction="none").sum(-1)
    return lpx + 0.5 * (eps.square() - z.square() + logvar.unsqueeze(1)).sum(-1)


def iwae_bound(model, x, k):
    """Per image logsumexp_i log w_i - log k, k samples, (B)."""
    mu, logvar = model.encode(x)
    eps = torch.randn(x.shape[0], k, mu.shape[1])
    return torch.logsumexp(log_weights(model, x, mu, logvar, eps), 1) - math.log(k)


def loss_fn(model, name, x, k):
    """(loss summed over the batch, for backward)."""
    if name == "vq-vae":
        logits, _, cb, cm = model(x)
        return bce_sum(logits, x) + cb + 0.25 * cm
    if name == "iwae":
        return -iwae_bound(model, x, k).sum()
    recon, kl, _ = vae_terms(model, x)
    return recon.sum() + kl.sum()


def build(name, latent):
    if name in ("vae", "iwae"):
        return MLPVAE(latent)
    if name == "conv-vae":
        return ConvVAE(latent)
    return VQVAE()


# --------------------------------------------------------------------------
# Test-set figures
# --------------------------------------------------------------------------

def iw_nll(model, x, k, chunk):
    """-(1/N) sum_n [logsumexp_k log w - log k], at most chunk (image, sample)
    pairs decoded at a time."""
    total = 0.0
    per = max(1, chunk // k)
    step = min(k, chunk)
    for i0 in range(0, x.shape[0], per):
        xb = x[i0:i0 + per]
        mu, logvar = model.encode(xb)
        parts = []
        for s0 in range(0, k, step):
            eps = torch.randn(xb.shape[0], min(step, k - s0), mu.shape[1])
            parts.append(log_weights(model, xb, mu, logvar, eps))
        total += (torch.logsumexp(torch.cat(parts, 1), 1) - math.log(k)).double().sum().item()
    return -total / x.shape[0]


def evaluate(model, name, test_x, args, batch=500):
    model.eval()
    n = test_x.shape[0]
    out = {}
    with torch.no_grad():
        if name == "vq-vae":
            sums = {"bce": 0.0, "codebook": 0.0, "commitment": 0.0}
            counts = torch.zeros(model.codebook.weight.shape[0], dtype=torch.float64)
            for i0 in range(0, n, batch):
                xb = test_x[i0:i0 + batch]
                logits, codes, cb, cm = model(xb)
                sums["bce"] += bce_sum(logits, xb).item()
                sums["codebook"] += cb.item()
                sums["commitment"] += cm.item()
                counts += torch.bincount(codes, minlength=counts.shape[0]).double()
            out = {key: v / n for key, v in sums.items()}
            p = counts / counts.sum()
            nz = p[p > 0]
            out["codes_used"] = int((counts > 0).sum().item())
            out["perplexity"] = math.exp(-(nz * nz.log()).sum().item())
            out["bits_per_image"] = 49 * math.log2(counts.shape[0])
            return out
        recon = kl = bound = 0.0
        mus = []
        for i0 in range(0, n, batch):
            xb = test_x[i0:i0 + batch]
            r, k, mu = vae_terms(model, xb)
            recon += r.double().sum().item()
            kl += k.double().sum().item()
            mus.append(mu)
            if name == "iwae":
                bound += iwae_bound(model, xb, args.k).double().sum().item()
        out["neg_elbo"] = (recon + kl) / n
        out["recon"] = recon / n
        out["kl"] = kl / n
        if name == "iwae":
            out["neg_iwae%d" % args.k] = -bound / n
        mu = torch.cat(mus).double()
        out["active_units"] = int((mu.var(0, unbiased=True) > 0.01).sum().item())
        t0 = time.perf_counter()
        out["nll"] = iw_nll(model, test_x[:args.iw_images], args.iw, args.chunk)
        out["nll_seconds"] = time.perf_counter() - t0
        out["nll_images"] = min(args.iw_images, n)
        out["nll_iw"] = args.iw
    return out


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def main(args):
    global CONVT
    CONVT = args.convt
    torch.set_num_threads(args.threads)
    if args.flush_denormal and not torch.set_flush_denormal(True):
        sys.exit("--flush-denormal: this CPU cannot flush subnormals (torch.set_flush_denormal returned False)")
    torch.backends.mkldnn.enabled = not args.no_mkldnn
    torch.manual_seed(args.seed)
    shuffle_gen = torch.Generator().manual_seed(args.seed)
    train_x = torch_vae.load_split(args.data, "train-images-idx3-ubyte")
    test_x = torch_vae.load_split(args.data, "t10k-images-idx3-ubyte")
    n = train_x.shape[0]
    model = build(args.model, args.latent)
    opt = optim.Adam(model.parameters(), lr=args.lr)
    settings = {"model": args.model, "seed": args.seed, "epochs": args.epochs, "batch": args.batch, "lr": args.lr,
                "latent": args.latent if args.model != "vq-vae" else 16, "k": args.k, "threads": args.threads,
                "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE", "auto"), "convt": args.convt,
                "mkldnn": not args.no_mkldnn, "torch": torch.__version__, "data": args.data,
                "train_images": n, "test_images": test_x.shape[0]}
    print("torch_models: %s" % json.dumps(settings), file=sys.stderr)

    if args.time_steps:
        model.train()
        perm = torch.randperm(n, generator=shuffle_gen)
        times = []
        for s in range(args.time_steps + 3):
            xb = train_x[perm[s * args.batch:(s + 1) * args.batch]]
            t0 = time.perf_counter()
            opt.zero_grad()
            loss_fn(model, args.model, xb, args.k).backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        times = sorted(times[3:])
        print("TIME model=%s convt=%s coretype=%s mkldnn=%d median_ms=%.2f min_ms=%.2f"
              % (args.model, args.convt, settings["openblas_coretype"], not args.no_mkldnn,
                 1e3 * times[len(times) // 2], 1e3 * times[0]))
        return

    epochs = []
    for epoch in range(1, args.epochs + 1):
        model.train()
        total = 0.0
        perm = torch.randperm(n, generator=shuffle_gen)
        t0 = time.perf_counter()
        for i0 in range(0, n, args.batch):
            xb = train_x[perm[i0:i0 + args.batch]]
            opt.zero_grad()
            loss = loss_fn(model, args.model, xb, args.k)
            loss.backward()
            opt.step()
            total += loss.item()
        dt = time.perf_counter() - t0
        epochs.append({"epoch": epoch, "train_loss": total / n, "seconds": dt})
        print("epoch %d/%d: train loss %.4f, %.2f s" % (epoch, args.epochs, total / n, dt), flush=True)

    figures = evaluate(model, args.model, test_x, args)
    figures["s_per_epoch"] = sum(e["seconds"] for e in epochs) / len(epochs)
    figures["train_loss"] = epochs[-1]["train_loss"]
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0

    os.makedirs(args.out, exist_ok=True)
    tensors = {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in model.state_dict().items()}
    safetensors_lite.write(os.path.join(args.out, "model.safetensors"), tensors,
                           {"format": "tapegrad-torch-" + args.model,
                            "config": json.dumps(settings, separators=(",", ":"))})
    with open(os.path.join(args.out, "result.json"), "w") as f:
        json.dump({"settings": settings, "figures": figures, "epochs": epochs}, f, indent=1)
        f.write("\n")

    def fmt(v):
        return ("%.4f" % v) if isinstance(v, float) else str(v)
    print("RESULT model=%s seed=%d %s threads=%d coretype=%s convt=%s" % (
        args.model, args.seed, " ".join("%s=%s" % (k, fmt(v)) for k, v in figures.items()),
        args.threads, settings["openblas_coretype"], args.convt))


if __name__ == "__main__":
    main(ARGS)
