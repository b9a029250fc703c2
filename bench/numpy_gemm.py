#!/usr/bin/env python3
"""numpy_gemm.py - float32 GEMM throughput of numpy's BLAS (OpenBLAS here)
on the MNIST VAE's shapes, the reference for bench/gemm_bench.c.

Same products as gemm_bench.c: C = op(A) @ op(B), op(A) (M, K), op(B) (K, N),
with A stored (K, M) when transA and B stored (N, K) when transB, so numpy
passes the transposes to sgemm instead of copying.

NumPy at its best: the thread count and OpenBLAS's core type must be fixed
before numpy loads its BLAS, so each candidate setting of
bench/blas_settings.py (OPENBLAS_CORETYPE unset, and the core type made for
this processor: SkylakeX or Haswell) runs in its own subprocess with
--threads threads. Each product is checked against a float64 product of the
same inputs (max |error| / max |reference| below 1e-4; a setting that fails
is reported and left out for that shape), then timed: best of repetitions,
2 M N K flops per call. Prints a header line starting with "#", a line
starting with "!" per failure, and one line per shape, the fastest setting's:

    transA transB M N K gflops setting  # name

    /usr/bin/python3 bench/numpy_gemm.py --threads 1
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from blas_settings import describe, run, settings  # noqa: E402

TOLERANCE = 1e-4

B = 128
# (name, transA, transB, M, N, K), as in gemm_bench.c
SHAPES = [
    ("fwd enc1   x@W^T", 0, 1, B, 400, 784),
    ("fwd mu     h@W^T", 0, 1, B, 20, 400),
    ("fwd dec1   z@W^T", 0, 1, B, 400, 20),
    ("fwd dec2   h@W^T", 0, 1, B, 784, 400),
    ("bwd enc1   dY@W", 0, 0, B, 784, 400),
    ("bwd mu     dY@W", 0, 0, B, 400, 20),
    ("bwd dec1   dY@W", 0, 0, B, 20, 400),
    ("bwd dec2   dY@W", 0, 0, B, 400, 784),
    ("bwd enc1   dY^T@x", 1, 0, 400, 784, B),
    ("bwd mu     dY^T@x", 1, 0, 20, 400, B),
    ("bwd dec1   dY^T@x", 1, 0, 400, 20, B),
    ("bwd dec2   dY^T@x", 1, 0, 784, 400, B),
]


def worker(threads, min_sec):
    """Times every shape under the environment's setting; one line per shape:
    transA transB M N K gflops rel_error."""
    import numpy as np  # the parent set the environment: BLAS reads it when loaded

    rng = np.random.default_rng(12345)
    print(f"numpy {np.__version__}", flush=True)
    for name, ta, tb, M, N, K in SHAPES:
        a = rng.uniform(-0.5, 0.5, (K, M) if ta else (M, K)).astype(np.float32)
        b = rng.uniform(-0.5, 0.5, (N, K) if tb else (K, N)).astype(np.float32)
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        c = np.empty((M, N), np.float32)
        for _ in range(3):
            np.matmul(opa, opb, out=c)
        ref = opa.astype(np.float64) @ opb.astype(np.float64)
        err = float(np.abs(c - ref).max() / np.abs(ref).max())
        best, reps, start = float("inf"), 0, time.perf_counter()
        while reps < 10 or time.perf_counter() - start < min_sec:
            t0 = time.perf_counter()
            np.matmul(opa, opb, out=c)
            best = min(best, time.perf_counter() - t0)
            reps += 1
        print(f"{ta} {tb} {M} {N} {K} {2.0 * M * N * K / best * 1e-9:.1f} {err:.2e}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--min-seconds", type=float, default=0.3,
                    help="minimum time per shape (default 0.3)")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.threads, args.min_seconds)
        return 0

    best = {}  # shape -> (gflops, setting)
    version, tried = "", []
    for setting in settings():
        p = run([os.path.abspath(__file__), "--worker", "--threads", str(args.threads),
                 "--min-seconds", str(args.min_seconds)], setting, args.threads)
        if p.returncode != 0:
            print(f"! NumPy GEMM, {args.threads} thread(s), {setting}: the worker failed (exit status {p.returncode}); left out")
            continue
        tried.append(f"{setting} ({describe(setting)})")
        for line in p.stdout.splitlines():
            f = line.split()
            if f and f[0] == "numpy":
                version = line
            if len(f) != 7:
                continue
            key, gf, err = tuple(map(int, f[:5])), float(f[5]), float(f[6])
            if not err < TOLERANCE:
                name = next(n for n, *shape in SHAPES if tuple(shape) == key)
                print(f"! NumPy GEMM, {args.threads} thread(s), {setting}: {name.strip()}: rel. error {err:.1e} "
                      f"against float64 (limit {TOLERANCE:g}); left out")
                continue
            if key not in best or gf > best[key][0]:
                best[key] = (gf, setting)
    if not best:
        return 1
    print(f"# OpenBLAS columns: {version}, settings tried: {', '.join(tried)}; per shape the fastest whose "
          f"product matches float64 (rel. error < {TOLERANCE:g})")
    for name, *shape in SHAPES:
        if tuple(shape) in best:
            gf, setting = best[tuple(shape)]
            print(" ".join(map(str, shape)) + f" {gf:.1f} {setting}  # {name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
