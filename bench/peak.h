/*
 * peak.h — the machine's float32 FMA peak, as the benches measure it, and
 * the clock they time with (header-only, shared by gemm_bench.c and
 * conv_bench.c).
 *
 *     fma_kind fk = best_fma();             // AVX-512, else AVX2+FMA, else scalar
 *     double peak1 = peak_gflops(fk, 1);    // GFLOP/s of one thread
 *     double peak2 = peak_gflops(fk, 2);    // of 2 threads (calls tg_threads_set(2))
 *
 * The peak is CHAINS independent FMA chains per thread (2 flops per lane per
 * FMA), enough to cover the FMA latency on every port, each thread running
 * about 20 ms; the best of 15 runs counts.
 */
#ifndef TG_BENCH_PEAK_H
#define TG_BENCH_PEAK_H

#include <stdint.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define BENCH_X86 1
#else
#define BENCH_X86 0
#endif

#include "tensor/pool.h"
#include "tensor/threads.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Peak: independent FMA chains, enough to cover the FMA latency on every
 * port. Returns a checksum so the loop is not optimised away. */

enum { CHAINS = 12 };

#if BENCH_X86
__attribute__((target("avx512f")))
static float fma_loop_avx512(int64_t iters)
{
    __m512 acc[CHAINS], x = _mm512_set1_ps(0.999f), y = _mm512_set1_ps(0.001f);
    for (int j = 0; j < CHAINS; j++) acc[j] = _mm512_set1_ps((float)j);
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < CHAINS; j++) acc[j] = _mm512_fmadd_ps(acc[j], x, y);
    for (int j = 1; j < CHAINS; j++) acc[0] = _mm512_add_ps(acc[0], acc[j]);
    return _mm512_reduce_add_ps(acc[0]);
}

__attribute__((target("avx2,fma")))
static float fma_loop_avx2(int64_t iters)
{
    __m256 acc[CHAINS], x = _mm256_set1_ps(0.999f), y = _mm256_set1_ps(0.001f);
    for (int j = 0; j < CHAINS; j++) acc[j] = _mm256_set1_ps((float)j);
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < CHAINS; j++) acc[j] = _mm256_fmadd_ps(acc[j], x, y);
    float t[8], sum = 0;
    for (int j = 1; j < CHAINS; j++) acc[0] = _mm256_add_ps(acc[0], acc[j]);
    _mm256_storeu_ps(t, acc[0]);
    for (int k = 0; k < 8; k++) sum += t[k];
    return sum;
}
#endif

static float fma_loop_scalar(int64_t iters)
{
    float acc[CHAINS];
    for (int j = 0; j < CHAINS; j++) acc[j] = (float)j;
    for (int64_t i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int j = 0; j < CHAINS; j++) acc[j] = acc[j] * 0.999f + 0.001f;
    float sum = 0;
    for (int j = 0; j < CHAINS; j++) sum += acc[j];
    return sum;
}

typedef struct {
    float (*loop)(int64_t);
    int lanes;
    const char *isa;
} fma_kind;

static fma_kind best_fma(void)
{
#if BENCH_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return (fma_kind){fma_loop_avx512, 16, "AVX-512"};
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return (fma_kind){fma_loop_avx2, 8, "AVX2"};
#endif
    return (fma_kind){fma_loop_scalar, 1, "scalar"};
}

typedef struct {
    fma_kind kind;
    int64_t iters;
    volatile float sink;
} peak_job;

static void peak_range(void *ctx, int64_t begin, int64_t end)
{
    peak_job *p = ctx;
    for (int64_t r = begin; r < end; r++) p->sink = p->kind.loop(p->iters);
}

/* GFLOP/s of `threads` threads each running the FMA loop, best of several
 * runs of about 20 ms. */
static double peak_gflops(fma_kind kind, int threads)
{
    tg_threads_set(threads);
    peak_job p = {kind, 1000, 0};
    double flops_per_iter = 2.0 * CHAINS * kind.lanes;
    for (;;) {  /* calibrate: about 20 ms per run */
        double t0 = now_seconds();
        peak_range(&p, 0, 1);
        if (now_seconds() - t0 > 0.02) break;
        p.iters *= 2;
    }
    double best = 0;
    for (int rep = 0; rep < 15; rep++) {
        double t0 = now_seconds();
        tg_parallel_for(threads, 1, peak_range, &p);
        double gf = threads * (double)p.iters * flops_per_iter / (now_seconds() - t0) * 1e-9;
        if (gf > best) best = gf;
    }
    return best;
}

#endif
