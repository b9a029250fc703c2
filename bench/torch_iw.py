#!/usr/bin/env python3
r"""PyTorch reference for `vae eval --iw K`'s speed (make bench, part 3).

The importance-sampled negative log-likelihood (Burda et al., 2016) of a
`vae train` run's model over a test set, with K samples per image:

    -log p(x) ~= -(logsumexp_k log w_k - log K),
    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),  z_k ~ q(z|x)

The model is bench/torch_vae.py's module with the run's sizes, loaded from
RUN/model.safetensors (scripts/torch_check.py, scripts/safetensors_lite.py);
the test images are DATA's t10k file (default: the run's data directory), so
pointing --data at a directory holding the first N test images evaluates the
same subset as `vae eval --data` on it. Float32, no autograd. Each batch of
images is encoded once; its (image, sample) pairs are decoded --chunk at a
time (memory does not grow with K), and the log-weights of an image are
reduced with logsumexp. Of the ways tried, the fastest on this model computes
sum_d x_d logit_d as h . (W3^T x) + b3 . x (h the decoder's hidden layer)
instead of a pass over the (pairs, D) logits; softplus still needs that pass.

Prints one line:
    RESULT seconds=S images=N iw=K nll=X peak_rss_mb=M threads=T
S is the time of the computation alone (not Python's start-up, importing
torch, or reading the data), M the process's peak resident set size.

--threads T sets torch.set_num_threads(T), OPENBLAS_NUM_THREADS and
OMP_NUM_THREADS (and OMP_WAIT_POLICY=PASSIVE unless set) before torch loads,
as bench/torch_vae.py does.

Example:
    /usr/bin/python3 bench/torch_iw.py --run runs/vae --iw 1000 --threads 1
"""

import argparse
import math
import os
import resource
import sys
import time


def parse_args():
    ap = argparse.ArgumentParser(description="importance-sampled NLL of a vae train run (PyTorch)")
    ap.add_argument("--run", required=True, help="a directory written by vae train")
    ap.add_argument("--data", help="dataset directory (default: the run's)")
    ap.add_argument("--iw", type=int, default=1000, help="samples per image (default 1000)")
    ap.add_argument("--threads", type=int, default=1, help="threads for torch and its BLAS (default 1)")
    ap.add_argument("--chunk", type=int, default=1000, help="(image, sample) pairs decoded at a time (default 1000)")
    ap.add_argument("--batch", type=int, default=500, help="images encoded at a time (default 500)")
    ap.add_argument("--seed", type=int, default=1)
    return ap.parse_args()


ARGS = parse_args()
os.environ["OPENBLAS_NUM_THREADS"] = str(ARGS.threads)
os.environ["OMP_NUM_THREADS"] = str(ARGS.threads)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import torch_check  # noqa: E402


def fast_log_weight(model, x, eps, mu, logvar):
    """torch_check.log_weight, with sum_d x_d logit_d = h . (W3^T x) + b3 . x."""
    z = mu.unsqueeze(1) + torch.exp(0.5 * logvar).unsqueeze(1) * eps
    h = F.relu(model.fc2(z))                                   # (n, S, H)
    xl = torch.bmm(h, (x @ model.fc3.weight).unsqueeze(2)).squeeze(2) + (x @ model.fc3.bias).unsqueeze(1)
    lpx = xl - F.softplus(model.fc3(h)).sum(-1)
    return lpx + 0.5 * (eps.square() - z.square() + logvar.unsqueeze(1)).sum(-1)


def main(args):
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        model, cfg = torch_check.load_run(args.run, torch.float32)
    except torch_check.RunError as e:
        sys.exit("torch_iw: %s" % e)
    x = torch_check.test_images(args.data or cfg["data"], torch.float32)
    total = 0.0
    t0 = time.perf_counter()
    with torch.no_grad():
        for i0 in range(0, x.shape[0], args.batch):
            lp = torch_check.iw_logpx(model, x[i0:i0 + args.batch], args.iw, args.chunk, log_weight=fast_log_weight)
            total += lp.double().sum().item()
    seconds = time.perf_counter() - t0
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print("RESULT seconds=%.3f images=%d iw=%d nll=%.4f peak_rss_mb=%.1f threads=%d"
          % (seconds, x.shape[0], args.iw, -total / x.shape[0], peak_rss_mb, torch.get_num_threads()))


if __name__ == "__main__":
    main(ARGS)
