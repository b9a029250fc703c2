/*
 * gemm_bench.c — float32 GEMM throughput on the shapes of the MNIST VAE.
 *
 * The VAE is 784 -> 400 -> 20 (mu, logvar) -> 400 -> 784 with batch B = 128.
 * A linear layer stores W as (out, in), so with x (B, in), dY (B, out):
 *   forward    y  = x @ W^T     M = B,   N = out, K = in,  transB
 *   backward   dX = dY @ W      M = B,   N = in,  K = out
 *              dW = dY^T @ x    M = out, N = in,  K = B,   transA
 * Each shape is run with every kernel this CPU supports and the best of
 * several repetitions is reported in GFLOP/s (2 M N K flops per call).
 *
 *   make build/gemm_bench && build/gemm_bench [min_seconds_per_case]
 * or
 *   gcc -std=c11 -O2 -I. bench/gemm_bench.c tensor/gemm.c tensor/tensor.c -lm \
 *       -o gemm_bench && ./gemm_bench [min_seconds_per_case]
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  /* clock_gettime */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tensor/gemm.h"
#include "tensor/tensor.h"

typedef struct {
    const char *name;
    bool transA, transB;
    int64_t M, N, K;
} bench_shape;

enum { B = 128 };

static const bench_shape shapes[] = {
    /* forward: y = x @ W^T */
    {"fwd enc1   x@W^T  ", false, true, B, 400, 784},
    {"fwd mu     h@W^T  ", false, true, B, 20, 400},
    {"fwd dec1   z@W^T  ", false, true, B, 400, 20},
    {"fwd dec2   h@W^T  ", false, true, B, 784, 400},
    /* backward, input gradients: dX = dY @ W */
    {"bwd enc1   dY@W   ", false, false, B, 784, 400},
    {"bwd mu     dY@W   ", false, false, B, 400, 20},
    {"bwd dec1   dY@W   ", false, false, B, 20, 400},
    {"bwd dec2   dY@W   ", false, false, B, 400, 784},
    /* backward, weight gradients: dW = dY^T @ x */
    {"bwd enc1   dY^T@x ", true, false, 400, 784, B},
    {"bwd mu     dY^T@x ", true, false, 20, 400, B},
    {"bwd dec1   dY^T@x ", true, false, 400, 20, B},
    {"bwd dec2   dY^T@x ", true, false, 784, 400, B},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static float *random_matrix(int64_t n, uint64_t *state)
{
    float *p = malloc((size_t)n * sizeof(float));
    if (!p) { perror("malloc"); exit(1); }
    for (int64_t i = 0; i < n; i++) {
        *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
        p[i] = (float)((double)(*state >> 40) / (double)(1 << 24) - 0.5);
    }
    return p;
}

/* Best GFLOP/s over repetitions of one call, running for at least min_sec. */
static double bench_one(const bench_shape *s, double min_sec)
{
    uint64_t st = 12345;
    int64_t M = s->M, N = s->N, K = s->K;
    /* Stored shapes: A is (M, K) or (K, M); B is (K, N) or (N, K). */
    int64_t lda = s->transA ? M : K, ldb = s->transB ? K : N;
    float *A = random_matrix(M * K, &st), *Bm = random_matrix(K * N, &st);
    float *C = random_matrix(M * N, &st);

    for (int w = 0; w < 3; w++)  /* warm up caches and pack buffers */
        tg_gemm_f32(s->transA, s->transB, M, N, K, 1.0f, A, lda, Bm, ldb, 0.0f, C, N);

    double best = 1e30, start = now_seconds();
    int reps = 0;
    while (reps < 10 || now_seconds() - start < min_sec) {
        double t0 = now_seconds();
        tg_gemm_f32(s->transA, s->transB, M, N, K, 1.0f, A, lda, Bm, ldb, 0.0f, C, N);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
        reps++;
    }
    free(A); free(Bm); free(C);
    return 2.0 * (double)M * (double)N * (double)K / best * 1e-9;
}

int main(int argc, char **argv)
{
    double min_sec = argc > 1 ? atof(argv[1]) : 0.3;
    static const char *names[] = {"avx512", "avx2", "generic"};
    enum { NNAMES = sizeof names / sizeof names[0] };

    printf("tg_gemm_f32, GFLOP/s (best of repetitions), auto = %s\n", tg_gemm_kernel_name());
    printf("%-19s %4s %4s %4s", "shape", "M", "N", "K");
    for (int k = 0; k < NNAMES; k++)
        if (tg_gemm_kernel_supported(names[k])) printf(" %8s", names[k]);
    printf("\n");

    double flops[NNAMES] = {0}, secs[NNAMES] = {0};
    for (int i = 0; i < NSHAPES; i++) {
        const bench_shape *s = &shapes[i];
        printf("%-19s %4lld %4lld %4lld", s->name, (long long)s->M, (long long)s->N,
               (long long)s->K);
        for (int k = 0; k < NNAMES; k++) {
            if (!tg_gemm_kernel_supported(names[k])) continue;
            tg_gemm_force_kernel(names[k]);
            double gf = bench_one(s, min_sec);
            double f = 2.0 * (double)s->M * (double)s->N * (double)s->K;
            flops[k] += f;
            secs[k] += f / (gf * 1e9);
            printf(" %8.1f", gf);
            fflush(stdout);
        }
        printf("\n");
    }
    /* One VAE training step runs each shape once: total flops / total time. */
    printf("%-19s %14s", "all shapes (step)", "");
    for (int k = 0; k < NNAMES; k++)
        if (tg_gemm_kernel_supported(names[k])) printf(" %8.1f", flops[k] / secs[k] * 1e-9);
    printf("\n");
    tg_gemm_force_kernel("auto");
    return 0;
}
