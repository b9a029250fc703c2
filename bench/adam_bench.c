/*
 * adam_bench.c — what bounds one Adam step: its arithmetic or its memory
 * traffic.
 *
 * tg_tensor_adam (the optimizer's kernel: the sequence of torch.optim.Adam,
 * a square root and two divisions per parameter) runs next to a loop with
 * the same memory traffic and no square root or division:
 *
 *     m = b1 m + c1 g;   v = b2 v + c2 g g;   p = p - s m v
 *
 * Both read p, g, m, v and write p, m, v: 28 bytes per float32 parameter.
 * When Adam's time per parameter is close to that loop's, memory bounds it
 * and cheaper arithmetic would not help; when it is well above, the square
 * root and divisions do. Sizes: one that stays in a core's L2 (one
 * thread: tg_tensor_adam does not split fewer than 2^16 parameters), the
 * reference VAE's and the conv VAE's parameter counts, and a larger one at
 * 1 and 2 threads (tg_threads_set); fastest of REPS steps, in ns per
 * parameter and GB/s of that traffic. Both split the parameters into the
 * same ranges (grain 2^15, as tg_tensor_adam).
 *
 *   make build/adam_bench && build/adam_bench
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif
#include <stdio.h>
#include <time.h>

#include "tensor/kernels.h"
#include "tensor/pool.h"
#include "tensor/tensor.h"
#include "tensor/threads.h"

enum { REPS = 60 };

typedef struct {
    float *p, *g, *m, *v;
} state;

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The traffic loop over [begin, end): Adam's loads and stores, FMAs only. */
static void traffic_range(void *ctx, int64_t begin, int64_t end)
{
    const state *s = ctx;
    float *restrict p = s->p, *restrict m = s->m, *restrict v = s->v;
    const float *restrict g = s->g;
    for (int64_t i = begin; i < end; i++) {
        m[i] = m[i] * 0.9f + g[i] * 0.1f;
        v[i] = v[i] * 0.999f + g[i] * g[i] * 0.001f;
        p[i] -= 1e-3f * m[i] * v[i];
    }
}

/* Fastest of REPS calls of one step, seconds. */
static double fastest(bool adam, tg_tensor *p, tg_tensor *g, tg_tensor *m, tg_tensor *v)
{
    state s = {p->data, g->data, m->data, v->data};
    double best = 1e30;
    for (int r = 0; r < REPS; r++) {
        double t0 = now_seconds();
        if (adam) tg_tensor_adam(p, g, m, v, 0.9, 0.999, 1e-3, 0.1, 1e-8, 0);
        else tg_parallel_for(p->numel, 1 << 15, traffic_range, &s);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
    }
    return best;
}

int main(void)
{
    static const struct {
        const char *what;
        int64_t n;
    } sizes[] = {
        {"in L2 (16,384)", 16384},
        {"reference VAE (652,824)", 652824},
        {"conv VAE (1,691,369)", 1691369},
        {"larger (8,000,000)", 8000000},
    };
    printf("Adam step (tg_tensor_adam, float32) next to a loop with its memory traffic alone\n");
    printf("(28 bytes per parameter: p, g, m, v read, p, m, v written; FMAs, no square root or division);\n");
    printf("fastest of %d steps, ns per parameter (GB/s of that traffic)\n", REPS);
    printf("%-26s %3s  %16s  %16s  %s\n", "parameters", "thr", "Adam", "traffic alone", "Adam / traffic");
    tg_arena *a = tg_arena_new();
    tg_rng rng = tg_rng_seed(1);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        int64_t n = sizes[k].n;
        tg_tensor *p = tg_tensor_uniform(a, TG_F32, TG_SHAPE(n), -0.1, 0.1, &rng);
        tg_tensor *g = tg_tensor_uniform(a, TG_F32, TG_SHAPE(n), -1e-2, 1e-2, &rng);
        tg_tensor *m = tg_tensor_zeros(a, TG_F32, TG_SHAPE(n)), *v = tg_tensor_zeros(a, TG_F32, TG_SHAPE(n));
        for (int th = 1; th <= (n >= 1 << 16 ? 2 : 1); th++) {
            tg_threads_set(th);
            double ta = fastest(true, p, g, m, v), tt = fastest(false, p, g, m, v);
            printf("%-26s %3d  %6.3f (%5.1f)  %6.3f (%5.1f)  %.2f\n", sizes[k].what, th, ta * 1e9 / (double)n,
                   28.0 * (double)n / ta * 1e-9, tt * 1e9 / (double)n, 28.0 * (double)n / tt * 1e-9, ta / tt);
        }
        tg_arena_reset(a);
    }
    tg_arena_free(a);
    return 0;
}
