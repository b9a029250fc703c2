/*
 * conv_bench.c — conv2d / conv_transpose2d forward + backward on the conv
 * VAE's layers (batch 128, k 4, stride 2, padding 1), float32: median ms
 * and GFLOP/s over the repetitions, the multiply-adds counted as 2 flops
 * (forward, weight gradient, and input gradient where the input wants one).
 *
 *     make build/libtapegrad.a && cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -I. \
 *         bench/conv_bench.c build/libtapegrad.a -o build/conv_bench -lm -lpthread
 *     build/conv_bench [reps]      (TG_THREADS=n to pin; compare bench/torch_conv.py)
 *
 * Times the op and its own backward rule (the output's gradient set
 * directly, so no seed copy is counted).
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "autograd/autograd.h"
#include "tensor/threads.h"

typedef struct {
    const char *name;
    bool transpose, x_grad;
    int64_t cin, cout, hw;
} layer;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int reps = argc > 1 ? atoi(argv[1]) : 30;
    const int64_t N = 128;
    layer layers[] = {
        {"conv2d 1->32 28x28", false, false, 1, 32, 28},
        {"conv2d 32->64 14x14", false, true, 32, 64, 14},
        {"conv_transpose2d 64->32 7x7", true, true, 64, 32, 7},
        {"conv_transpose2d 32->1 14x14", true, true, 32, 1, 14},
    };
    tg_conv_args a = {.stride = {2, 2}, .padding = {1, 1}};
    tg_rng r = tg_rng_seed(1);
    tg_arena *keep = tg_arena_new();
    tg_tape *t = tg_tape_new();
    printf("threads %d, batch %lld, float32\n", tg_threads_get(), (long long)N);
    double total_ms = 0;
    for (size_t l = 0; l < sizeof layers / sizeof *layers; l++) {
        layer *L = &layers[l];
        tg_tensor *x = tg_tensor_uniform(keep, TG_F32, TG_SHAPE(N, L->cin, L->hw, L->hw), -1, 1, &r);
        tg_tensor *w = tg_tensor_uniform(keep, TG_F32, L->transpose ? TG_SHAPE(L->cin, L->cout, 4, 4)
                                                                    : TG_SHAPE(L->cout, L->cin, 4, 4), -0.1, 0.1, &r);
        tg_tensor *b = tg_tensor_uniform(keep, TG_F32, TG_SHAPE(L->cout), -0.1, 0.1, &r);
        int64_t ho = L->transpose ? 2 * L->hw : L->hw / 2;
        tg_tensor *seed = tg_tensor_uniform(keep, TG_F32, TG_SHAPE(N, L->cout, ho, ho), -1, 1, &r);
        /* multiply-adds of one product: the conv2d-side output pixels times its taps */
        int64_t pix = L->transpose ? N * L->hw * L->hw : N * ho * ho, chans = L->transpose ? L->cin : L->cout;
        int64_t taps = (L->transpose ? L->cout : L->cin) * 16;
        double flops = 2.0 * pix * chans * taps * (L->x_grad ? 3 : 2);
        double *ms = malloc((size_t)reps * sizeof *ms), *fw = malloc((size_t)reps * sizeof *fw);
        for (int k = -3; k < reps; k++) {
            tg_var *vx = tg_leaf(t, x, L->x_grad), *vw = tg_leaf(t, w, true), *vb = tg_leaf(t, b, true);
            double t0 = now();
            tg_var *y = L->transpose ? tg_conv_transpose2d(t, vx, vw, vb, a) : tg_conv2d(t, vx, vw, vb, a);
            double t1 = now();
            y->grad = *seed;   /* the op's own backward, without the seed's copy */
            tg_ops[t->entries[t->n - 1].op].backward(t, &t->entries[t->n - 1]);
            double t2 = now();
            tg_tape_reset(t);
            if (k >= 0) ms[k] = (t2 - t0) * 1e3, fw[k] = (t1 - t0) * 1e3;
        }
        qsort(ms, (size_t)reps, sizeof *ms, cmp);
        qsort(fw, (size_t)reps, sizeof *fw, cmp);
        double med = ms[reps / 2];
        total_ms += med;
        printf("%-30s fwd %7.3f ms  fwd+bwd %7.3f ms  %6.1f GFLOP/s\n", L->name, fw[reps / 2], med, flops / med / 1e6);
        free(ms), free(fw);
    }
    printf("%-30s fwd+bwd %7.3f ms\n", "total", total_ms);
    tg_tape_free(t);
    tg_arena_free(keep);
    return 0;
}
