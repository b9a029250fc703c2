#!/usr/bin/env python3
r"""Are CVAE samples of class L recognised as L? tapegrad next to PyTorch.

1. A classifier independent of both CVAEs: a 784-256-10 ReLU MLP trained in
   PyTorch on the training images (Adam 1e-3, batch 128); its test accuracy
   on real images is printed first.
2. PyTorch's own CVAE with tapegrad's architecture and settings
   (models/vae_family.h): encoder [x, onehot(y)] 794 -> 400 ReLU -> mu,
   logvar (20 each); decoder [z, onehot(y)] 30 -> 400 ReLU -> 784 logits;
   learned prior one Linear 10 -> 40 (mu_p the first 20 outputs, logvar_p the
   last 20) with the KL between the two diagonal Gaussians, or N(0, I); loss
   BCE-with-logits summed over pixels and batch + KL; Adam 1e-3, batch 128,
   every image once per epoch in a fresh shuffled order (last batch partial).
3. tapegrad's: `vae train --model cvae --prior learned|standard`, then
   `vae sample --run DIR --label L --n N --temperature T --out FILE.idx`.

Samples: for every class L, N images decoded from z = mu_p(L) + T sigma_p(L)
eps (T = 1: samples from the prior; T = 0: its mean, so the N images of a
class are one image). PyTorch's are quantised to 8 bits as tapegrad's IDX
files are (tg_png_pixel_from_f32). The figure is the fraction the classifier
labels L, for each framework x prior x temperature.

Every model is trained with --seeds different seeds (1, 2, ...; init and
shuffling) and the table gives the mean over seeds. The check: tapegrad fails
(exit 1) where its mean is more than MARGIN below PyTorch's in the same
setting, MARGIN = --margin-se (default 3) standard errors of the difference
of the two means. The standard error of one mean is
sqrt(max(s^2, p(1 - p) / n) / K): s the standard deviation of the K per-seed
figures (training variability and sampling noise together), floored by the
binomial variance of n independent trials of one seed (n = 10 N for T > 0,
but n = 10 at T = 0, where each class contributes one image). With K = 3 the
difference over its standard error has about a t distribution with 2-4
degrees of freedom: 3 standard errors leave a few per cent of false alarms
when the two frameworks are equal, and catch a real gap of about 5.

    /usr/bin/python3 scripts/cvae_recognition.py                       # defaults below
    /usr/bin/python3 scripts/cvae_recognition.py --epochs 3 --per-class 1000 --seeds 3 \
        --data /usr/share/datasets/fashion-mnist --vae build/vae --out runs/cvae_recognition

Writes OUT/tapegrad-<prior>-seed<S>/ (the runs and their sample IDX files) and
OUT/results.json (every figure, per seed and per class).
"""

import argparse
import gzip
import json
import math
import os
import struct
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRIORS = ("learned", "standard")
PRIOR_NAMES = {"learned": "learned prior", "standard": "N(0, I)"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist",
                   help="directory with the four MNIST-format IDX files, raw or .gz (default %(default)s)")
    p.add_argument("--epochs", type=int, default=3, help="CVAE epochs (default %(default)s)")
    p.add_argument("--clf-epochs", type=int, default=5, help="classifier epochs (default %(default)s)")
    p.add_argument("--per-class", type=int, default=1000, help="samples per class and setting (default %(default)s)")
    p.add_argument("--temperatures", default="1,0", help="comma-separated T values (default %(default)s)")
    p.add_argument("--seeds", type=int, default=3, help="models trained per framework and prior (default %(default)s)")
    p.add_argument("--vae", default=os.path.join(ROOT, "build", "vae"), help="the vae binary (default %(default)s)")
    p.add_argument("--out", default=os.path.join(ROOT, "runs", "cvae_recognition"),
                   help="output directory (default %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="threads for both frameworks (default %(default)s)")
    p.add_argument("--margin-se", type=float, default=3.0,
                   help="fail when tapegrad is more than this many standard errors below PyTorch (default %(default)s)")
    a = p.parse_args()
    try:
        a.temps = [float(t) for t in a.temperatures.split(",")]
    except ValueError:
        p.error("--temperatures: expected numbers separated by commas, got %r" % a.temperatures)
    if any(not (t >= 0 and math.isfinite(t)) for t in a.temps):
        p.error("--temperatures: each must be finite and >= 0")
    for name in ("epochs", "clf_epochs", "per_class", "seeds", "threads"):
        if getattr(a, name) < 1:
            p.error("--%s: must be >= 1" % name.replace("_", "-"))
    return a


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    # The OpenBLAS pool of Debian's torch reads its size when it loads (see
    # bench/torch_vae.py).
    os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
    os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402


# ---------------------------------------------------------------- data

def read_idx(path):
    """An IDX file (raw or gzip) as a uint8 array: (n, rows * cols) images or (n) labels."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        buf = f.read()
    magic, = struct.unpack(">I", buf[:4])
    if magic == 0x803:
        n, rows, cols = struct.unpack(">III", buf[4:16])
        return np.frombuffer(buf, np.uint8, n * rows * cols, 16).reshape(n, rows * cols)
    if magic == 0x801:
        n, = struct.unpack(">I", buf[4:8])
        return np.frombuffer(buf, np.uint8, n, 8)
    raise ValueError("%s: not an IDX image or label file (magic 0x%08x)" % (path, magic))


def load(data_dir, stem):
    for name in (stem + ".gz", stem):
        if os.path.isfile(os.path.join(data_dir, name)):
            return read_idx(os.path.join(data_dir, name))
    sys.exit("error: %s(.gz) not found in %s" % (stem, data_dir))


def to_float(u8):
    return torch.from_numpy(u8.astype(np.float32) / np.float32(255))


def quantise(p):
    """Pixels in [0, 1] to uint8 as tg_png_pixel_from_f32: (uint8)(x * 255 + 0.5), clamped."""
    p = p.float().clamp(0, 1)
    return (p * 255 + 0.5).floor().to(torch.uint8).numpy()


# ---------------------------------------------------------------- classifier

def fit(make, loss, x, y, epochs, seed):
    """make() trained with Adam 1e-3, batch 128 on loss(model, x, y), every
    image once per epoch in a fresh shuffled order (the last batch partial)."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    m = make()
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), 128):
            idx = perm[i:i + 128]
            opt.zero_grad()
            loss(m, x[idx], y[idx]).backward()
            opt.step()
    return m


def train_classifier(x, y, tx, ty, epochs):
    clf = fit(lambda: nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)),
              lambda m, xb, yb: F.cross_entropy(m(xb), yb), x, y, epochs, 0)
    return clf, (predict(clf, tx) == ty.numpy()).mean()


def predict(clf, x):
    with torch.no_grad():
        return torch.cat([clf(x[i:i + 4096]).argmax(1) for i in range(0, len(x), 4096)]).numpy()


# ---------------------------------------------------------------- PyTorch's CVAE

class CVAE(nn.Module):
    """tapegrad's CVAE with one hidden layer, under its parameter names."""

    def __init__(self, learned, D=784, H=400, L=20, K=10):
        super().__init__()
        self.K, self.L = K, L
        self.fc1 = nn.Linear(D + K, H)
        self.fc_mu = nn.Linear(H, L)
        self.fc_logvar = nn.Linear(H, L)
        self.fc2 = nn.Linear(L + K, H)
        self.fc3 = nn.Linear(H, D)
        self.prior = nn.Linear(K, 2 * L) if learned else None

    def prior_of(self, oh):
        if self.prior is None:
            z = torch.zeros(len(oh), self.L)
            return z, z
        p = self.prior(oh)
        return p[:, :self.L], p[:, self.L:]

    def decode(self, z, oh):
        return self.fc3(F.relu(self.fc2(torch.cat([z, oh], 1))))

    def loss(self, x, y):
        """Negative ELBO summed over the batch: recon, kl."""
        oh = F.one_hot(y, self.K).float()
        h = F.relu(self.fc1(torch.cat([x, oh], 1)))
        mu, lv = self.fc_mu(h), self.fc_logvar(h)
        z = mu + torch.exp(0.5 * lv) * torch.randn_like(mu)
        recon = F.binary_cross_entropy_with_logits(self.decode(z, oh), x, reduction="sum")
        mp, lp = self.prior_of(oh)
        kl = 0.5 * (lp - lv + (lv.exp() + (mu - mp) ** 2) / lp.exp() - 1)
        return recon, kl.sum()


def train_torch_cvae(learned, x, y, tx, ty, epochs, seed):
    m = fit(lambda: CVAE(learned), lambda m, xb, yb: sum(m.loss(xb, yb)), x, y, epochs, seed)
    with torch.no_grad():
        test = sum(sum(m.loss(tx[i:i + 1000], ty[i:i + 1000])).item() for i in range(0, len(tx), 1000))
    return m, test / len(tx)


def torch_samples(m, label, n, T, seed):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        oh = F.one_hot(torch.full((n,), label, dtype=torch.long), m.K).float()
        mp, lp = m.prior_of(oh)
        z = mp + T * torch.exp(0.5 * lp) * torch.randn(n, m.L, generator=gen)
        return quantise(torch.sigmoid(m.decode(z, oh)))


# ---------------------------------------------------------------- tapegrad's CVAE

def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if r.returncode != 0:
        sys.exit("error: %s exited %d: %s" % (" ".join(cmd), r.returncode, r.stderr.strip()))
    return r.stdout


def train_tapegrad(a, prior, seed):
    d = os.path.join(a.out, "tapegrad-%s-seed%d" % (prior, seed))
    os.makedirs(d, exist_ok=True)
    run([a.vae, "train", "--model", "cvae", "--prior", prior, "--epochs", str(a.epochs), "--seed", str(seed),
         "--data", a.data, "--threads", str(a.threads), "--out", d])
    with open(os.path.join(d, "metrics.csv")) as f:
        test = float(f.read().strip().split("\n")[-1].split(",")[2])
    return d, test


def tapegrad_samples(a, d, label, n, T, seed):
    path = os.path.join(d, "samples-T%g-label%d.idx" % (T, label))
    run([a.vae, "sample", "--run", d, "--label", str(label), "--n", str(n), "--temperature", repr(T),
         "--seed", str(seed), "--threads", str(a.threads), "--out", path])
    return read_idx(path)


# ---------------------------------------------------------------- figures

def recognition(clf, draw, n):
    """Per-class fraction of the n samples of class L that clf labels L; draw(L) -> (n, 784) uint8."""
    return [float((predict(clf, to_float(draw(L))) == L).mean()) for L in range(10)]


def mean_se(rates, trials):
    """Mean over seeds of the per-seed rates, and its standard error (see the top of the file)."""
    k = len(rates)
    p = sum(rates) / k
    s2 = sum((r - p) ** 2 for r in rates) / (k - 1) if k > 1 else 0.0
    return p, math.sqrt(max(s2, p * (1 - p) / trials) / k)


def main(a):
    torch.set_num_threads(a.threads)
    t0 = time.time()
    if not os.access(a.vae, os.X_OK):
        sys.exit("error: %s is not an executable (run make first)" % a.vae)
    os.makedirs(a.out, exist_ok=True)
    x = load(a.data, "train-images-idx3-ubyte")
    y = torch.from_numpy(load(a.data, "train-labels-idx1-ubyte").astype(np.int64))
    tx = load(a.data, "t10k-images-idx3-ubyte")
    ty = torch.from_numpy(load(a.data, "t10k-labels-idx1-ubyte").astype(np.int64))
    x, tx = to_float(x), to_float(tx)
    print("data %s: %d train, %d test images; torch %s, %d thread(s)"
          % (a.data, len(x), len(tx), torch.__version__, a.threads), flush=True)

    clf, acc = train_classifier(x, y, tx, ty, a.clf_epochs)
    print("classifier 784-256-10, %d epochs: %.2f%% on the real test images (%.0f s)"
          % (a.clf_epochs, 100 * acc, time.time() - t0), flush=True)

    N = a.per_class
    res = {"classifier_test_accuracy": float(acc), "epochs": a.epochs, "per_class": N, "seeds": a.seeds,
           "temperatures": a.temps, "runs": []}
    for prior in PRIORS:
        for seed in range(1, a.seeds + 1):
            t = time.time()
            m, test = train_torch_cvae(prior == "learned", x, y, tx, ty, a.epochs, seed)
            tt = time.time() - t
            t = time.time()
            d, gtest = train_tapegrad(a, prior, seed)
            gt = time.time() - t
            for fw, tl, secs in (("pytorch", test, tt), ("tapegrad", gtest, gt)):
                for T in a.temps:
                    # Sampling seeds differ per class and seed, the same for both frameworks' seed s.
                    if fw == "pytorch":
                        per = recognition(clf, lambda L: torch_samples(m, L, N, T, 1000 * seed + L), N)
                    else:
                        per = recognition(clf, lambda L: tapegrad_samples(a, d, L, N, T, 1000 * seed + L), N)
                    res["runs"].append({"framework": fw, "prior": prior, "seed": seed, "temperature": T,
                                        "test_loss": tl, "train_seconds": secs, "per_class": per,
                                        "rate": sum(per) / 10})
            done = res["runs"][-2 * len(a.temps):]
            print("%-8s seed %d: test loss PyTorch %.2f (%.0f s), tapegrad %.2f (%.0f s); recognised at T = %s: %s"
                  % (prior, seed, test, tt, gtest, gt, ", ".join("%g" % T for T in a.temps),
                     "; ".join("%s %s" % (fw, ", ".join("%.1f%%" % (100 * r["rate"]) for r in done
                                                        if r["framework"] == fw))
                               for fw in ("pytorch", "tapegrad"))), flush=True)

    # ------------------------------------------------------------ table
    print()
    print("Samples recognised as the asked label (mean over %d seed(s); +- one standard error; "
          "%d samples per class)" % (a.seeds, N))
    print("%-14s %-5s %-18s %-18s %-9s %s" % ("prior", "T", "PyTorch", "tapegrad", "margin", "verdict"))
    failed = []
    for prior in PRIORS:
        for T in a.temps:
            trials = 10 if T == 0 else 10 * N
            row = {}
            for fw in ("pytorch", "tapegrad"):
                rates = [r["rate"] for r in res["runs"] if r["framework"] == fw and r["prior"] == prior
                         and r["temperature"] == T]
                row[fw] = mean_se(rates, trials)
            (pp, ps), (tp, ts) = row["pytorch"], row["tapegrad"]
            margin = a.margin_se * math.hypot(ps, ts)
            ok = tp >= pp - margin
            if not ok:
                failed.append((prior, T))
            res.setdefault("table", []).append({"prior": prior, "temperature": T, "pytorch": pp, "pytorch_se": ps,
                                                "tapegrad": tp, "tapegrad_se": ts, "margin": margin, "ok": ok})
            print("%-14s %-5g %5.1f%% +- %4.1f     %5.1f%% +- %4.1f     %4.1f pts  %s"
                  % (PRIOR_NAMES[prior], T, 100 * pp, 100 * ps, 100 * tp, 100 * ts, 100 * margin,
                     "ok" if ok else "BELOW"))
    print()
    print("Per class (mean over seeds), classes 0..9:")
    for prior in PRIORS:
        for T in a.temps:
            for fw in ("pytorch", "tapegrad"):
                per = np.mean([r["per_class"] for r in res["runs"] if r["framework"] == fw
                               and r["prior"] == prior and r["temperature"] == T], axis=0)
                print("  %-14s T=%-4g %-8s %s" % (PRIOR_NAMES[prior], T, fw, " ".join("%3.0f" % (100 * v) for v in per)))
    res["wall_seconds"] = time.time() - t0
    with open(os.path.join(a.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    print()
    print("wall time %.0f s; figures in %s" % (res["wall_seconds"], os.path.join(a.out, "results.json")))
    if failed:
        print("FAIL: tapegrad below PyTorch by more than the margin at %s"
              % ", ".join("%s T=%g" % (PRIOR_NAMES[p], T) for p, T in failed))
        return 1
    print("ok: tapegrad within %g standard errors of PyTorch or above it in every setting" % a.margin_se)
    return 0


if __name__ == "__main__":
    sys.exit(main(ARGS))
