#!/usr/bin/env python3
"""numpy_gemm.py - float32 GEMM throughput of numpy's BLAS (OpenBLAS here)
on the MNIST VAE's shapes, the reference for bench/gemm_bench.c.

Same products as gemm_bench.c: C = op(A) @ op(B), op(A) (M, K), op(B) (K, N),
with A stored (K, M) when transA and B stored (N, K) when transB, so numpy
passes the transposes to sgemm instead of copying. Prints one line per shape,

    transA transB M N K gflops

best of repetitions (2 M N K flops per call). The thread count must be fixed
before numpy loads its BLAS, so it is set here from --threads:

    /usr/bin/python3 bench/numpy_gemm.py --threads 1
"""
import argparse
import os
import sys
import time

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    ap.add_argument("--min-seconds", type=float, default=0.3,
                    help="minimum time per shape (default 0.3)")
    args = ap.parse_args()
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    import numpy as np  # after the environment: BLAS reads it when loaded

    rng = np.random.default_rng(12345)
    print(f"# numpy {np.__version__}, {args.threads} thread(s)", file=sys.stderr)
    for name, ta, tb, M, N, K in SHAPES:
        a = rng.uniform(-0.5, 0.5, (K, M) if ta else (M, K)).astype(np.float32)
        b = rng.uniform(-0.5, 0.5, (N, K) if tb else (K, N)).astype(np.float32)
        opa, opb = (a.T if ta else a), (b.T if tb else b)
        c = np.empty((M, N), np.float32)
        for _ in range(3):
            np.matmul(opa, opb, out=c)
        best, reps, start = float("inf"), 0, time.perf_counter()
        while reps < 10 or time.perf_counter() - start < args.min_seconds:
            t0 = time.perf_counter()
            np.matmul(opa, opb, out=c)
            best = min(best, time.perf_counter() - t0)
            reps += 1
        print(f"{ta} {tb} {M} {N} {K} {2.0 * M * N * K / best * 1e-9:.1f}  # {name}")


if __name__ == "__main__":
    main()
