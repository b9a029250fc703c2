#!/usr/bin/env python3
"""torch_conv.py - PyTorch's convolution speed on the conv VAE's shapes, the
reference for bench/conv_bench.c, printed in the same table.

Same shapes (float32, batch 128, kernel 4, stride 2, padding 1, with bias)
and the same passes, at 1 and 2 threads:
    fwd      y = F.conv2d / F.conv_transpose2d(x, w, b) under torch.no_grad()
    fwd+bwd  the same, then torch.autograd.grad(y, (x, w, b), dy), dy fixed
3 warm-up calls, then at least 10 calls and --min-seconds; the fastest call
counts. GFLOP/s: 2*MACs per fwd, 3x that per fwd+bwd, bias not counted.

PyTorch at its best setting: for each thread count, one fresh subprocess per
OpenBLAS core type (bench/blas_settings.py), the one OpenBLAS picks by itself
("auto") and OPENBLAS_CORETYPE=SkylakeX (AVX-512 CPUs) or Haswell (AVX2),
each with OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS and
torch.set_num_threads set to the thread count (and OMP_WAIT_POLICY=PASSIVE
unless set, as bench/torch_vae.py) before torch loads. Inside each, every
shape runs with oneDNN (torch.backends.mkldnn, PyTorch's default here) and
without it (im2col + OpenBLAS), and each conv_transpose2d also runs as the
input gradient of conv2d (torch.nn.grad.conv2d_input forward; backward
F.conv2d for dx and torch.nn.grad.conv2d_weight for dw). Every variant's y,
dx, dw, db are checked against a float64 computation (max |error| / max
|reference| below 1e-4; a variant that disagrees is reported and not used).
The fastest variant per shape, pass and thread count is printed, with its
setting: core type / backend / formulation.

    /usr/bin/python3 bench/torch_conv.py [--min-seconds S] [--peak P1,P2]

--peak takes the FMA peak GFLOP/s on 1 and 2 threads (as build/conv_bench
prints it) for the %pk column; without it the column shows "-".
"""
import argparse
import math
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blas_settings import cpu_coretype, run, settings  # noqa: E402,F401 (cpu_coretype: scripts/torch_models.py)

B, K, S, P = 128, 4, 2, 1
THREADS = (1, 2)
# (name, transposed, cin, cout, h), as in conv_bench.c
SHAPES = [
    ("conv2d:1->32@28x28", False, 1, 32, 28),
    ("conv2d:32->64@14x14", False, 32, 64, 14),
    ("convT2d:64->32@7x7", True, 64, 32, 7),
    ("convT2d:32->1@14x14", True, 32, 1, 14),
]
PASSES = ("fwd", "fwd+bwd")
TOLERANCE = 1e-4


def out_size(transposed, h):
    return (h - 1) * S - 2 * P + K if transposed else (h + 2 * P - K) // S + 1


def fwd_flops(transposed, cin, cout, h):
    pixels = h * h if transposed else out_size(False, h) ** 2
    return 2.0 * B * pixels * cin * cout * K * K


# --------------------------------------------------------------------------
# Worker: one process, one thread count, one OpenBLAS core type (all set in
# the environment by the parent before torch loads). Prints one line per
# shape, pass and variant:  RESULT name pass variant ms max_rel_err


def worker(threads, min_sec):
    import torch
    import torch.nn.functional as F
    from torch.nn.grad import conv2d_input, conv2d_weight

    torch.set_num_threads(threads)

    class ConvTViaConv2d(torch.autograd.Function):
        """conv_transpose2d(x, w, b) as the input gradient of conv2d with
        weight w (conv2d's output channels are x's); its backward is conv2d
        (dx) and conv2d's weight gradient (dw)."""

        @staticmethod
        def forward(ctx, x, w, b):
            ctx.save_for_backward(x, w)
            ho = out_size(True, x.shape[2])
            y = conv2d_input((x.shape[0], w.shape[1], ho, ho), w, x, S, P)
            return y.add_(b.view(1, -1, 1, 1))

        @staticmethod
        def backward(ctx, dy):
            x, w = ctx.saved_tensors
            return (F.conv2d(dy, w, None, S, P), conv2d_weight(dy, w.shape, x, S, P),
                    dy.sum((0, 2, 3)))

    def op(transposed, formulation):
        if not transposed:
            return lambda x, w, b: F.conv2d(x, w, b, S, P)
        if formulation == "conv2d_input":
            return ConvTViaConv2d.apply
        return lambda x, w, b: F.conv_transpose2d(x, w, b, S, P)

    def best_ms(fn):
        for _ in range(3):
            fn()
        best, reps, start = math.inf, 0, time.perf_counter()
        while reps < 10 or time.perf_counter() - start < min_sec:
            t0 = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t0)
            reps += 1
        return best * 1e3

    def rel_err(got, ref):
        return max(float((g.double() - r).abs().max() / r.abs().max()) for g, r in zip(got, ref))

    gen = torch.Generator().manual_seed(12345)
    for name, transposed, cin, cout, h in SHAPES:
        ho = out_size(transposed, h)
        wshape = (cin, cout, K, K) if transposed else (cout, cin, K, K)
        x = torch.rand(B, cin, h, h, generator=gen) * 2 - 1
        w = torch.rand(*wshape, generator=gen) * 0.2 - 0.1
        b = torch.rand(cout, generator=gen) * 0.2 - 0.1
        dy = torch.rand(B, cout, ho, ho, generator=gen) * 2 - 1
        leaves = [t.clone().requires_grad_() for t in (x, w, b)]
        # float64 reference: y, dx, dw, db
        ref64 = [t.double().requires_grad_() for t in (x, w, b)]
        y64 = op(transposed, "reference")(*ref64)
        ref = [y64.detach()] + list(torch.autograd.grad(y64, ref64, dy.double()))

        formulations = ("conv_transpose2d", "conv2d_input") if transposed else ("conv2d",)
        for backend in ("mkldnn", "native"):
            for formulation in formulations:
                f = op(transposed, formulation)
                variant = backend + "/" + formulation
                with torch.backends.mkldnn.flags(enabled=(backend == "mkldnn")):
                    with torch.no_grad():
                        err_fwd = rel_err([f(x, w, b)], ref[:1])
                        ms = best_ms(lambda: f(x, w, b))
                    print(f"RESULT {name} fwd {variant} {ms:.4f} {err_fwd:.2e}", flush=True)

                    def fwd_bwd():
                        return torch.autograd.grad(f(*leaves), leaves, dy)
                    y = f(*leaves).detach()
                    err = rel_err([y] + list(fwd_bwd()), ref)
                    ms = best_ms(fwd_bwd)
                    print(f"RESULT {name} fwd+bwd {variant} {ms:.4f} {err:.2e}", flush=True)


# --------------------------------------------------------------------------
# Parent: runs the workers and prints the table.


def run_worker(threads, setting, min_sec):
    cmd = [os.path.abspath(__file__), "--worker", str(threads), "--min-seconds", str(min_sec)]
    out = run(cmd, setting, threads, check=True).stdout
    rows = []
    for line in out.splitlines():
        if line.startswith("RESULT "):
            _, name, pss, variant, ms, err = line.split()
            rows.append((name, pss, variant, float(ms), float(err)))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--min-seconds", type=float, default=0.3,
                    help="minimum time per case (default 0.3)")
    ap.add_argument("--peak", default="", help="FMA peak GFLOP/s on 1 and 2 threads: P1,P2")
    ap.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.min_seconds)
        return
    peak = dict(zip(THREADS, map(float, args.peak.split(",")))) if args.peak else {}

    import torch  # only for its version: the workers do the measuring
    coretypes = settings()
    print(f"PyTorch {torch.__version__}: convolutions of the conv VAE: float32, batch {B}, "
          f"kernel {K}, stride {S}, padding {P}, with bias")
    print("GFLOP/s: 2*MACs per fwd, 3x that per fwd+bwd (dx, dw, db); bias adds not counted")
    print("ms: fastest call after 3 warm-up calls, at the fastest setting "
          f"core type ({', '.join(coretypes)}) / backend (mkldnn = oneDNN, native = im2col + "
          "OpenBLAS) / formulation (convT2d: conv_transpose2d or conv2d_input)")
    best = {}  # (name, pass, threads) -> (ms, setting)
    worst_err, bad = 0.0, []
    for threads in THREADS:
        for coretype in coretypes:
            for name, pss, variant, ms, err in run_worker(threads, coretype, args.min_seconds):
                setting = f"{coretype}/{variant}"
                if not err < TOLERANCE:
                    bad.append(f"{name} {pss} {threads} thr {setting}: rel. error {err:.1e}")
                    continue
                worst_err = max(worst_err, err)
                key = (name, pss, threads)
                if key not in best or ms < best[key][0]:
                    best[key] = (ms, setting)
    print(f"outputs and gradients of every setting agree with float64: max rel. error "
          f"{worst_err:.1e} (limit {TOLERANCE:g})")
    for line in bad:
        print(f"DISAGREES, left out: {line}")
    print(f"{'shape':21} {'pass':7} {'thr':>3} {'ms':>9} {'GFLOP/s':>8} {'%pk':>5}  setting")
    for name, transposed, cin, cout, h in SHAPES:
        for pss in PASSES:
            for threads in THREADS:
                if (name, pss, threads) not in best:
                    continue
                ms, setting = best[(name, pss, threads)]
                gf = (3 if pss == "fwd+bwd" else 1) * fwd_flops(transposed, cin, cout, h) / ms * 1e-6
                pk = f"{100 * gf / peak[threads]:4.0f}%" if threads in peak else "    -"
                print(f"{name:21} {pss:7} {threads:3d} {ms:9.3f} {gf:8.1f} {pk}  {setting}")


if __name__ == "__main__":
    main()
