#!/usr/bin/env python3
"""A `vae train` run read by PyTorch, and a PyTorch-trained model read by
`vae eval`: both sides compute the test-set figures of the same weights and
must agree.

    /usr/bin/python3 scripts/torch_check.py check RUN [--iw 20] [--data DIR]
    /usr/bin/python3 scripts/torch_check.py torch-run OUT [--epochs 1] [--hidden 400] [--latent 20]
    /usr/bin/python3 scripts/torch_check.py fixture            # rewrites tests/fixtures/torch_run/

Needs PyTorch and NumPy (on Debian the system interpreter, /usr/bin/python3)
and a built build/vae (`make`). Exit status 0 on PASS, 1 on FAIL, 2 on a run
this script cannot check.

check RUN: RUN is a directory written by `build/vae train` with one hidden
  layer (parameters fc1, fc_mu, fc_logvar, fc2, fc3; sizes from config.json).
  The PyTorch reference module of bench/torch_vae.py, with the run's sizes,
  takes RUN/model.safetensors through load_state_dict(strict=True) and
  computes, in float64, over the test set of the run's data directory (or
  --data), per image in nats:
    kl     KL(q(z|x) || N(0, I)), exactly from mu and logvar
    recon  BCE with logits summed over pixels, at one z = mu + sigma eps
    nll    -log p(x) importance-sampled with K = --iw samples (Burda et al.)
  then runs `build/vae eval --run RUN --iw K` and compares:
    kl, kl_per_dim   relative difference <= 1e-4 (per dimension: relative to
                     the total KL). Both sides compute the same number; only
                     float32 rounding separates them.
    recon, nll       |difference| <= 4 combined standard errors. Each side is a
                     mean over the N test images of one random draw per image
                     (its own generator), so the images' spread cancels between
                     the two sides: the difference only carries the draws'
                     noise, whose variance is sum_i 2 Var(r | x_i) / N^2. PyTorch
                     draws every image twice, independently; (a_i - b_i)^2 / 2
                     is an unbiased estimate of Var(r | x_i), so
                         se = sqrt(mean_i (a_i - b_i)^2 / 2 / N)
                     is each side's standard error and sqrt(2) se the
                     difference's. The table shows a, and for scale also the
                     standard error across images, std_i(a_i) / sqrt(N), which
                     would be the right one for two different test sets.
  active_units is shown, not checked.
  Only runs of gray pixels (binarize "none") and the Bernoulli likelihood are
  checked: a binarised test set is drawn with tapegrad's own generator, which
  this script does not reproduce.

torch-run OUT: trains the reference module with PyTorch (the textbook loop of
  bench/torch_vae.py: Adam, BCE on sigmoid outputs + KL, shuffled batches) for
  --epochs epochs (0: its initial weights), writes OUT/model.safetensors
  (float32, metadata "format" and "config" as `vae train` writes them) and
  OUT/config.json, then runs `check OUT`.

fixture: the committed run tests/fixtures/torch_run/ for tests/test_torch_run.c,
  which needs no PyTorch: the reference module with hidden 16, latent 4
  trained by PyTorch on tests/fixtures/data/mini (37 train and 11 test
  gray images of 5x4), plus reference.json with PyTorch's float64 test-set
  figures: kl and kl_per_dim exact; recon and nll as expectations over the
  draws (recon: 20,000 draws per image; nll: 2,000 repetitions of the K-sample
  estimate), with recon_se and nll_se, the standard error of vae eval's
  single-draw figures, sqrt(mean_i Var(. | x_i) / N). Then it runs the same
  comparison as the C test if build/vae exists. Deterministic for a PyTorch
  version.
"""

import argparse
import gzip
import json
import math
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "bench"))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn, optim  # noqa: E402

import safetensors_lite  # noqa: E402
import torch_vae  # noqa: E402

FIXTURE_DIR = "tests/fixtures/torch_run"    # both relative to ROOT, as the C test runs
FIXTURE_DATA = "tests/fixtures/data/mini"
FIXTURE_IW = 100


class RunError(Exception):
    """A run this script cannot check; the message says why."""


# --------------------------------------------------------------------------
# The reference module
# --------------------------------------------------------------------------

class RefVAE(torch_vae.VAE):
    """bench/torch_vae.py's VAE (its encode, reparameterize and decode) with the
    sizes of a run: D -> H (ReLU) -> mu, logvar (L each); L -> H (ReLU) -> D."""

    def __init__(self, d, h, l):
        nn.Module.__init__(self)
        self.d = d
        self.fc1 = nn.Linear(d, h)
        self.fc_mu = nn.Linear(h, l)
        self.fc_logvar = nn.Linear(h, l)
        self.fc2 = nn.Linear(l, h)
        self.fc3 = nn.Linear(h, d)

    def decode_logits(self, z):
        return self.fc3(F.relu(self.fc2(z)))

    def forward(self, x):
        mu, logvar = self.encode(x.view(-1, self.d))
        return self.decode(self.reparameterize(mu, logvar)), mu, logvar


def textbook_loss(recon_x, x, mu, logvar):
    """torch_vae.loss_function for any image size: BCE on probabilities + KL, summed."""
    bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def read_config(run):
    """RUN/config.json, refused with a RunError unless this script can check it."""
    path = os.path.join(run, "config.json")
    try:
        with open(path) as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise RunError("%s: %s" % (path, e))
    why = None
    if cfg.get("classes", 0) != 0 or cfg.get("model") == "cvae":
        why = "model %r: only unconditional runs (vae, beta-vae, annealed-vae) are checked" % cfg.get("model")
    elif cfg.get("likelihood") != "bernoulli":
        why = "likelihood %r: only bernoulli is checked" % cfg.get("likelihood")
    elif len(cfg.get("hidden", [])) != 1:
        why = ("hidden %s: only one hidden layer has the reference module's names "
               "(fc1, fc_mu, fc_logvar, fc2, fc3)" % cfg.get("hidden"))
    elif cfg.get("binarize") != "none":
        why = ("binarize %r: the test set is binarised with tapegrad's own generator (seed + 3), which this "
               "script does not reproduce; check a run trained with --binarize none" % cfg.get("binarize"))
    if why:
        raise RunError("%s: %s" % (path, why))
    return cfg


def load_run(run, dtype=torch.float64):
    """(the reference module with RUN/model.safetensors loaded, in dtype; config)."""
    cfg = read_config(run)
    d = cfg["image_rows"] * cfg["image_cols"]
    model = RefVAE(d, cfg["hidden"][0], cfg["latent"])
    path = os.path.join(run, "model.safetensors")
    tensors, _ = safetensors_lite.read(path)
    try:
        model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in tensors.items()}, strict=True)
    except RuntimeError as e:
        raise RunError("%s: %s" % (path, e))
    return model.to(dtype).eval(), cfg


def test_images(data_dir, dtype=torch.float64):
    """(N, D): pixels / 255 in float32, as tapegrad and torch_vae.py compute them, widened to dtype."""
    return torch_vae.load_split(data_dir, "t10k-images-idx3-ubyte").to(dtype)


# --------------------------------------------------------------------------
# Test-set figures
# --------------------------------------------------------------------------

def log_px_given_z(model, x, eps, mu, logvar):
    """eps (N, S, L) -> (log p(x|z), log p(z) - log q(z|x)), each (N, S), at
    z = mu + exp(logvar / 2) eps; (z - mu)^2 / sigma^2 = eps^2, so the
    Gaussians' constants cancel."""
    z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
    logits = model.decode_logits(z)
    lpx = -F.binary_cross_entropy_with_logits(logits, x.unsqueeze(1).expand_as(logits), reduction="none").sum(-1)
    return lpx, 0.5 * (eps.square() - z.square() + logvar.unsqueeze(1)).sum(-1)


def log_weight(model, x, eps, mu, logvar):
    """log w = log p(x|z) + log p(z) - log q(z|x), (N, S)."""
    lpx, lpz = log_px_given_z(model, x, eps, mu, logvar)
    return lpx + lpz


def iw_logpx(model, x, k, chunk_rows=4096, mu_logvar=None, log_weight=log_weight):
    """log p(x) ~= logsumexp_k log w_k - log k per image, x (N, D) -> (N).
    At most chunk_rows (image, sample) pairs are decoded at a time, by
    log_weight(model, x, eps, mu, logvar) -> (N', S) as above."""
    mu, logvar = mu_logvar if mu_logvar is not None else model.encode(x)
    n, L = mu.shape
    per = max(1, chunk_rows // k)        # images per chunk
    step = min(k, chunk_rows)            # samples per chunk
    out = torch.empty(n, dtype=x.dtype)
    for i0 in range(0, n, per):
        sl = slice(i0, i0 + per)
        parts = []
        for s0 in range(0, k, step):
            eps = torch.randn(mu[sl].shape[0], min(step, k - s0), L, dtype=x.dtype)
            parts.append(log_weight(model, x[sl], eps, mu[sl], logvar[sl]))
        out[sl] = torch.logsumexp(torch.cat(parts, 1), 1) - math.log(k)
    return out


def per_image(model, x, k, batch=500):
    """Per image (numpy arrays): kl, kl per dim, mu, and two independent draws
    each of the one-sample recon and of the k-sample IW nll."""
    cols = {"kl": [], "kl_dim": [], "mu": [], "recon_a": [], "recon_b": [], "nll_a": [], "nll_b": []}
    with torch.no_grad():
        for i0 in range(0, x.shape[0], batch):
            xb = x[i0:i0 + batch]
            mu, logvar = model.encode(xb)
            kd = 0.5 * (mu.square() + logvar.exp() - logvar - 1)
            lpx, _ = log_px_given_z(model, xb, torch.randn(xb.shape[0], 2, mu.shape[1], dtype=x.dtype), mu, logvar)
            vals = {"kl": kd.sum(1), "kl_dim": kd, "mu": mu, "recon_a": -lpx[:, 0], "recon_b": -lpx[:, 1],
                    "nll_a": -iw_logpx(model, xb, k, mu_logvar=(mu, logvar)),
                    "nll_b": -iw_logpx(model, xb, k, mu_logvar=(mu, logvar))}
            for key, v in vals.items():
                cols[key].append(v.numpy())
    return {key: np.concatenate(v) for key, v in cols.items()}


def run_eval(vae, run, data, k, seed, threads):
    cmd = [vae, "eval", "--run", run, "--data", data, "--iw", str(k), "--seed", str(seed)]
    if threads:
        cmd += ["--threads", str(threads)]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        raise RunError("%s: exit %d: %s" % (" ".join(cmd), p.returncode, p.stderr.strip()))
    return json.loads(p.stdout), " ".join(cmd[1:])


def compare(args, run, data=None):
    """Prints the side-by-side table; True on PASS."""
    model, cfg = load_run(run)
    data = data or cfg.get("data")
    if not data or not torch_vae.has_dataset(data):
        raise RunError("no dataset: %r (give --data DIR)" % data)
    torch.manual_seed(args.seed)
    x = test_images(data)
    n = x.shape[0]
    t = per_image(model, x, args.iw)
    ours, cmd = run_eval(args.vae, run, data, args.iw, args.seed, args.threads)

    print("run %s: %d-%d-%d, %d test images of %s, binarize %s" % (run, cfg["image_rows"] * cfg["image_cols"],
          cfg["hidden"][0], cfg["latent"], n, data, cfg["binarize"]))
    print("PyTorch %s (float64) against `vae %s`" % (torch.__version__, cmd))
    print("%-16s %16s %16s %13s %17s" % ("", "PyTorch", "vae eval", "difference", "tolerance"))
    ok = True

    def row(name, ref, got, diff, tol, unit):
        nonlocal ok
        good = abs(diff) <= tol
        ok &= good
        print("%-16s %16.6f %16.6f %+13.3g %13.3g%-4s %s" % (name, ref, got, diff, tol, unit, "ok" if good else "FAIL"))

    kl = t["kl"].mean()
    row("kl", kl, ours["kl"], (ours["kl"] - kl) / kl, 1e-4, " rel")
    kd = t["kl_dim"].mean(0)
    worst = int(np.argmax(np.abs(np.array(ours["kl_per_dim"]) - kd)))
    row("kl_per_dim[%d]" % worst, kd[worst], ours["kl_per_dim"][worst], (ours["kl_per_dim"][worst] - kd[worst]) / kl,
        1e-4, " rel")
    notes = []
    for key, name in (("recon", "recon (1 draw)"), ("nll", "nll (iw %d)" % args.iw)):
        a, b = t[key + "_a"], t[key + "_b"]
        se = math.sqrt(np.mean((a - b) ** 2 / 2) / n)
        row(name, a.mean(), ours[key], ours[key] - a.mean(), 4 * math.sqrt(2) * se, " 4se")
        notes.append("%s: draw noise se %.3g per side; se across images %.3g" % (key, se, a.std(ddof=1) / math.sqrt(n)))
    au = int((np.var(t["mu"], axis=0, ddof=1) > 0.01).sum())
    print("%-16s %16d %16d %13s %17s %s" % ("active_units", au, ours["active_units"], "", "", "(not checked)"))
    for s in notes:
        print("  " + s)
    print("PASS" if ok else "FAIL")
    return ok


# --------------------------------------------------------------------------
# PyTorch-written runs
# --------------------------------------------------------------------------

def train_torch(data, hidden, latent, epochs, batch, lr, seed, log=print):
    """The textbook loop of bench/torch_vae.py on data's training set."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    train_x = torch_vae.load_split(data, "train-images-idx3-ubyte")
    model = RefVAE(train_x.shape[1], hidden, latent)
    opt = optim.Adam(model.parameters(), lr=lr)
    n = train_x.shape[0]
    for epoch in range(1, epochs + 1):
        total = 0.0
        perm = torch.randperm(n, generator=gen)
        for i0 in range(0, n, batch):
            xb = train_x[perm[i0:i0 + batch]]
            opt.zero_grad()
            recon, mu, logvar = model(xb)
            loss = textbook_loss(recon, xb, mu, logvar)
            loss.backward()
            total += loss.item()
            opt.step()
        log("PyTorch epoch %d/%d: train loss %.4f" % (epoch, epochs, total / n))
    return model, train_x.shape[0]


def image_size(data):
    """(rows, cols) of data's test images, from the IDX header."""
    path = torch_vae.find_idx(data, "t10k-images-idx3-ubyte")
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        _, _, rows, cols = struct.unpack(">IIII", f.read(16))
    return rows, cols


def write_run(out, model, data, n_train, n_test, epochs, batch, lr, seed):
    """OUT/model.safetensors and OUT/config.json as `vae train` writes them."""
    rows, cols = image_size(data)
    cfg = {"model": "vae", "data": data, "train_images": n_train, "test_images": n_test, "image_rows": rows,
           "image_cols": cols, "classes": 0, "epochs": epochs, "batch": batch, "hidden": [model.fc1.out_features],
           "latent": model.fc_mu.out_features, "lr": lr, "beta": 1, "anneal": "linear", "anneal_epochs": 10,
           "anneal_steps": 0, "cycles": 4, "ratio": 0.5, "prior": "standard", "likelihood": "bernoulli",
           "binarize": "none", "seed": seed, "threads": 0, "out": out}
    meta = {k: v for k, v in cfg.items() if k not in ("data", "threads", "out")}
    os.makedirs(out, exist_ok=True)
    tensors = {k: v.detach().to(torch.float32).numpy() for k, v in model.state_dict().items()}
    safetensors_lite.write(os.path.join(out, "model.safetensors"), tensors,
                           {"format": "tapegrad-vae", "config": json.dumps(meta, separators=(",", ":"))})
    with open(os.path.join(out, "config.json"), "w") as f:
        f.write(json.dumps(cfg, separators=(",", ":")) + "\n")


def cmd_torch_run(args):
    data = args.data or torch_vae.SYSTEM_FASHION_MNIST
    model, n_train = train_torch(data, args.hidden, args.latent, args.epochs, args.batch, args.lr, args.seed)
    write_run(args.out, model, data, n_train, test_images(data).shape[0], args.epochs, args.batch, args.lr, args.seed)
    print("wrote %s/model.safetensors and config.json" % args.out)
    return compare(args, args.out, data)


def reference(run, data, k, draws=20000, repeats=2000, seed=1):
    """PyTorch's float64 figures of a run as expectations over the draws (see fixture)."""
    model, _ = load_run(run)
    x = test_images(data)
    n = x.shape[0]
    torch.manual_seed(seed)
    with torch.no_grad():
        mu, logvar = model.encode(x)
        kd = 0.5 * (mu.square() + logvar.exp() - logvar - 1)
        lpx, _ = log_px_given_z(model, x, torch.randn(n, draws, mu.shape[1], dtype=x.dtype), mu, logvar)
        nll = -iw_logpx(model, x.repeat(repeats, 1), k).reshape(repeats, n)
    recon = -lpx
    return {"source": "scripts/torch_check.py fixture", "torch": torch.__version__, "data": data, "images": n,
            "iw_samples": k, "kl": kd.sum(1).mean().item(), "kl_per_dim": kd.mean(0).tolist(),
            "recon": recon.mean().item(), "recon_se": math.sqrt(recon.var(1).mean().item() / n),
            "recon_draws": draws, "nll": nll.mean().item(), "nll_se": math.sqrt(nll.var(0).mean().item() / n),
            "nll_repeats": repeats}


def cmd_fixture(args):
    os.chdir(ROOT)   # the run's data path is relative to the repository, as the C test runs
    model, n_train = train_torch(FIXTURE_DATA, 16, 4, args.epochs, 8, 1e-2, 1)
    write_run(FIXTURE_DIR, model, FIXTURE_DATA, n_train, test_images(FIXTURE_DATA).shape[0], args.epochs, 8, 1e-2, 1)
    ref = reference(FIXTURE_DIR, FIXTURE_DATA, FIXTURE_IW)
    with open(os.path.join(FIXTURE_DIR, "reference.json"), "w") as f:
        f.write(json.dumps(ref, indent=1) + "\n")
    print(json.dumps(ref, indent=1))
    if not os.access(args.vae, os.X_OK):
        print("(%s not built: the comparison with vae eval is skipped)" % args.vae)
        return True
    ours, cmd = run_eval(args.vae, FIXTURE_DIR, FIXTURE_DATA, FIXTURE_IW, 1, 1)
    print("vae %s:\n%s" % (cmd, json.dumps(ours)))
    checks = [("kl", abs(ours["kl"] - ref["kl"]) / ref["kl"], 1e-4),
              ("kl_per_dim", max(abs(a - b) for a, b in zip(ours["kl_per_dim"], ref["kl_per_dim"])) / ref["kl"], 1e-4),
              ("recon", abs(ours["recon"] - ref["recon"]) / ref["recon_se"], 4),
              ("nll", abs(ours["nll"] - ref["nll"]) / ref["nll_se"], 4)]
    for name, v, tol in checks:
        print("%-12s %10.3g (tolerance %g%s) %s" % (name, v, tol, "" if tol < 1 else " standard errors",
                                                   "ok" if v <= tol else "FAIL"))
    return all(v <= tol for _, v, tol in checks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--vae", default=os.path.join(ROOT, "build", "vae"), help="the vae binary (default build/vae)")
    common.add_argument("--iw", type=int, default=20, help="importance samples per image for nll (default 20)")
    common.add_argument("--seed", type=int, default=1, help="seed of the draws, both sides (default 1)")
    common.add_argument("--threads", type=int, default=0, help="vae eval --threads (default: its own)")
    common.add_argument("--data", help="dataset directory (default: the run's; torch-run: Fashion-MNIST)")
    p = sub.add_parser("check", parents=[common], help="a run of vae train, read by PyTorch")
    p.add_argument("run")
    p = sub.add_parser("torch-run", parents=[common], help="a PyTorch-trained run, read by vae eval")
    p.add_argument("out")
    p.add_argument("--epochs", type=int, default=1, help="0: the initial weights (default 1)")
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p = sub.add_parser("fixture", parents=[common], help="rewrite tests/fixtures/torch_run/")
    p.add_argument("--epochs", type=int, default=40)
    args = ap.parse_args()
    try:
        if args.cmd == "check":
            ok = compare(args, args.run, args.data)
        elif args.cmd == "torch-run":
            ok = cmd_torch_run(args)
        else:
            ok = cmd_fixture(args)
    except RunError as e:
        print("torch_check: %s" % e, file=sys.stderr)
        return 2
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
