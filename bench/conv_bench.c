/*
 * conv_bench.c — float32 convolution speed on the shapes of the conv VAE,
 * forward and forward+backward, on 1 and 2 threads, next to the machine's
 * FMA peak. bench/torch_conv.py measures the same with PyTorch and prints
 * the same table; scripts/bench_conv.sh runs both and prints the ratios.
 *
 * The conv VAE (batch B = 128, kernel 4, stride 2, padding 1, with bias):
 *   encoder  conv2d            x (B, 1, 28, 28)  w (32, 1, 4, 4)  -> (B, 32, 14, 14)
 *            conv2d            x (B, 32, 14, 14) w (64, 32, 4, 4) -> (B, 64, 7, 7)
 *   decoder  conv_transpose2d  x (B, 64, 7, 7)   w (64, 32, 4, 4) -> (B, 32, 14, 14)
 *            conv_transpose2d  x (B, 32, 14, 14) w (32, 1, 4, 4)  -> (B, 1, 28, 28)
 *
 * What is timed, per shape and thread count (tg_threads_set):
 *   fwd      y = conv(x, w, b), no input requiring a gradient (nothing is
 *            recorded on the tape: inference)
 *   fwd+bwd  the same with x, w and b requiring gradients, then the
 *            backward from a fixed random dy: dx, dw, db. dy is handed to
 *            y as its gradient without a copy, as the next layer's backward
 *            hands it over in a training step (and as PyTorch's
 *            torch.autograd.grad(y, (x, w, b), dy) does); tg_backward_seed
 *            would add a 1.6-3.2 MB copy that no training step makes.
 * Each is called 3 times to warm up, then repeated (at least 10 times and
 * min_seconds); the fastest call counts. The tape is reset between calls,
 * outside the timed region.
 *
 * GFLOP/s counts 2 flops per multiply-add of the convolution (MACs: for
 * conv2d B·O·Ho·Wo·C·kh·kw, for conv_transpose2d B·C·H·W·O·kh·kw, C the
 * input channels) for fwd, and 3 times that for fwd+bwd (dx and dw each
 * cost a forward); bias adds and the db sum are not counted. %pk is that
 * as a percentage of the FMA peak on the same number of threads, measured
 * as gemm_bench does (bench/peak.h).
 *
 *   make build/conv_bench && build/conv_bench [min_seconds_per_case (default 0.3)]
 */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L  /* clock_gettime */
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autograd/autograd.h"
#include "bench/peak.h"
#include "tensor/tensor.h"

enum { B = 128, K = 4, S = 2, P = 1, THREADS = 2 };

typedef struct {
    const char *name;  /* the row's key, no spaces (scripts/bench_conv.sh joins on it) */
    bool transposed;   /* tg_conv_transpose2d, else tg_conv2d */
    int64_t cin, cout; /* channels in and out */
    int64_t h;         /* input height = width */
} conv_shape;

static const conv_shape shapes[] = {
    {"conv2d:1->32@28x28", false, 1, 32, 28},
    {"conv2d:32->64@14x14", false, 32, 64, 14},
    {"convT2d:64->32@7x7", true, 64, 32, 7},
    {"convT2d:32->1@14x14", true, 32, 1, 14},
};
enum { NSHAPES = sizeof shapes / sizeof shapes[0] };

/* Output height = width: (h + 2P - K) / S + 1, or (h - 1) S - 2P + K transposed. */
static int64_t out_size(const conv_shape *s)
{
    return s->transposed ? (s->h - 1) * S - 2 * P + K : (s->h + 2 * P - K) / S + 1;
}

/* 2 · MACs of the forward pass: every (input pixel of a transposed conv, or
 * output pixel of a conv) meets cin·cout·K·K weights. */
static double fwd_flops(const conv_shape *s)
{
    int64_t pixels = s->transposed ? s->h * s->h : out_size(s) * out_size(s);
    return 2.0 * B * (double)pixels * (double)(s->cin * s->cout * K * K);
}

/* ------------------------------------------------------------------------ */

typedef struct {
    tg_tensor *x;   /* (B, cin, h, h) */
    tg_tensor *w;   /* (cout, cin, K, K); (cin, cout, K, K) transposed */
    tg_tensor *b;   /* (cout) */
    tg_tensor *dy;  /* the output's shape (B, cout, ho, ho): backward's seed */
} conv_data;

static conv_data conv_data_new(tg_arena *a, const conv_shape *s, tg_rng *r)
{
    int64_t ho = out_size(s);
    tg_shape ws = s->transposed ? TG_SHAPE(s->cin, s->cout, K, K) : TG_SHAPE(s->cout, s->cin, K, K);
    return (conv_data){
        .x = tg_tensor_uniform(a, TG_F32, TG_SHAPE(B, s->cin, s->h, s->h), -1, 1, r),
        .w = tg_tensor_uniform(a, TG_F32, ws, -0.1, 0.1, r),
        .b = tg_tensor_uniform(a, TG_F32, TG_SHAPE(s->cout), -0.1, 0.1, r),
        .dy = tg_tensor_uniform(a, TG_F32, TG_SHAPE(B, s->cout, ho, ho), -1, 1, r),
    };
}

/* One call: the forward, and with grad its backward (dx, dw, db). */
static void conv_step(tg_tape *t, const conv_shape *s, const conv_data *d, bool grad)
{
    tg_var *x = tg_leaf(t, d->x, grad), *w = tg_leaf(t, d->w, grad), *b = tg_leaf(t, d->b, grad);
    tg_conv_args a = {.stride = {S, S}, .padding = {P, P}};
    tg_var *y = s->transposed ? tg_conv_transpose2d(t, x, w, b, a) : tg_conv2d(t, x, w, b, a);
    if (!grad) return;
    y->grad = *d->dy;   /* dy arrives as y's gradient (read only by the backward) */
    const tg_entry *e = &t->entries[t->n - 1];   /* the convolution's tape entry */
    tg_ops[e->op].backward(t, e);
}

/* Milliseconds of the fastest call, after 3 warm-up calls, over at least 10
 * calls and min_sec seconds. */
static double best_ms(tg_tape *t, const conv_shape *s, const conv_data *d, bool grad, double min_sec)
{
    for (int i = 0; i < 3; i++) {
        tg_tape_reset(t);
        conv_step(t, s, d, grad);
    }
    double best = 1e30, start = now_seconds();
    for (int reps = 0; reps < 10 || now_seconds() - start < min_sec; reps++) {
        tg_tape_reset(t);
        double t0 = now_seconds();
        conv_step(t, s, d, grad);
        double dt = now_seconds() - t0;
        if (dt < best) best = dt;
    }
    tg_tape_reset(t);
    return best * 1e3;
}

int main(int argc, char **argv)
{
    double min_sec = 0.3;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: %s [min_seconds_per_case (default 0.3)]\n", argv[0]);
            return 0;
        }
        min_sec = atof(argv[i]);
    }

    fma_kind fk = best_fma();
    double peak[THREADS + 1] = {0};
    for (int th = 1; th <= THREADS; th++) peak[th] = peak_gflops(fk, th);

    printf("Convolutions of the conv VAE: float32, batch %d, kernel %d, stride %d, padding %d, with bias\n",
           B, K, S, P);
    printf("GFLOP/s: 2*MACs per fwd, 3x that per fwd+bwd (dx, dw, db); bias adds not counted\n");
    printf("ms: fastest call after 3 warm-up calls; %%pk: %% of the FMA peak on that many threads\n");
    printf("Peak (%s FMA loop): %.1f GFLOP/s on 1 thread, %.1f on 2 threads\n", fk.isa, peak[1],
           peak[2]);
    printf("%-21s %-7s %3s %9s %8s %5s  %s\n", "shape", "pass", "thr", "ms", "GFLOP/s", "%pk",
           "setting");

    tg_arena *arena = tg_arena_new();
    tg_tape *t = tg_tape_new();
    tg_rng rng = tg_rng_seed(12345);
    for (int i = 0; i < NSHAPES; i++) {
        const conv_shape *s = &shapes[i];
        conv_data d = conv_data_new(arena, s, &rng);
        for (int grad = 0; grad <= 1; grad++)
            for (int th = 1; th <= THREADS; th++) {
                tg_threads_set(th);
                double ms = best_ms(t, s, &d, grad, min_sec);
                double gf = (grad ? 3 : 1) * fwd_flops(s) / ms * 1e-6;
                printf("%-21s %-7s %3d %9.3f %8.1f %4.0f%%  tapegrad\n", s->name,
                       grad ? "fwd+bwd" : "fwd", th, ms, gf, 100 * gf / peak[th]);
                fflush(stdout);
            }
    }
    tg_tape_free(t);
    tg_arena_free(arena);
    tg_threads_set(0);
    return 0;
}
