/*
 * test_binarize.c — binarisation (data/data.h: tg_images_binarize,
 * tg_binarize_f32) and the images a run trains and tests on
 * (tg_train_images, examples/vae/train.h), as eval sees them (tg_run_test_images,
 * examples/vae/evaluate.h).
 *
 * The rule is checked two ways: statistically (a gray level p gives 255 with
 * frequency p / 255, within 5 binomial standard deviations; 0 stays 0 and 255
 * stays 255), and draw for draw against the documented rule written out here
 * (tg_hand_binarize: one uniform per pixel in row-major order, generator
 * seeded seed + 3, the training set's draws first for static binarisation).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/data.h"
#include "examples/vae/evaluate.h"

#include "tests/hand_vae.h"
#include "tests/vae_cli.h"

TestSuite(binarize, .timeout = 120);

static const int levels[] = {0, 1, 2, 127, 128, 200, 254, 255};
#define NPIX 200000

/* k of n draws came out 255 (or 1) for gray level p. */
static void expect_frequency(const char *what, int p, int64_t k, int64_t n) {
    double q = p / 255.0, mean = q * (double)n, sd = sqrt((double)n * q * (1 - q));
    if (p == 0) cr_expect_eq(k, 0, "%s: level 0 gave %lld ones", what, (long long)k);
    else if (p == 255) cr_expect_eq(k, n, "%s: level 255 gave %lld zeros", what, (long long)(n - k));
    else
        cr_expect_leq(fabs((double)k - mean), 5 * sd, "%s: level %d: %lld of %lld, expected %.1f +- %.1f", what, p,
                      (long long)k, (long long)n, mean, sd);
}

Test(binarize, images_level_p_gives_255_with_frequency_p_over_255) {
    tg_images src = {.n = 1, .rows = 400, .cols = NPIX / 400, .pixels = malloc(NPIX)};
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        memset(src.pixels, levels[i], NPIX);
        tg_rng r = tg_rng_seed(100 + i);
        tg_images dst;
        cr_assert_eq(tg_images_binarize(&src, &dst, &r), 0);
        cr_assert(dst.n == src.n && dst.rows == src.rows && dst.cols == src.cols && dst.pixels != src.pixels);
        int64_t k = 0;
        for (int64_t j = 0; j < NPIX; j++) {
            cr_assert(dst.pixels[j] == 0 || dst.pixels[j] == 255, "pixel %lld is %d", (long long)j, dst.pixels[j]);
            k += dst.pixels[j] == 255;
        }
        expect_frequency("tg_images_binarize", levels[i], k, NPIX);
        cr_expect_eq(src.pixels[0], levels[i], "the source changed");
        tg_images_free(&dst);
    }
    free(src.pixels);
}

Test(binarize, f32_x_gives_1_with_frequency_x) {
    float *x = malloc(sizeof(float) * NPIX);
    for (size_t i = 0; i < sizeof levels / sizeof *levels; i++) {
        for (int64_t j = 0; j < NPIX; j++) x[j] = (float)levels[i] / 255.0f;   /* as the batcher gives pixels */
        tg_rng r = tg_rng_seed(200 + i);
        tg_binarize_f32(x, NPIX, &r);
        int64_t k = 0;
        for (int64_t j = 0; j < NPIX; j++) {
            cr_assert(x[j] == 0.0f || x[j] == 1.0f, "value %lld is %g", (long long)j, x[j]);
            k += x[j] == 1.0f;
        }
        expect_frequency("tg_binarize_f32", levels[i], k, NPIX);
    }
    free(x);
}

/* Both functions make the documented draws: one uniform u per value in
 * order, 255 (1) iff u < p / 255 (u < x). */
Test(binarize, draws_as_documented) {
    enum { N = 40 };
    tg_images src = {.n = N, .rows = 28, .cols = 28, .pixels = malloc(N * 784)};
    uint8_t lab[N];
    tg_cli_make_images(src.pixels, lab, N, 3);
    tg_rng r = tg_rng_seed(9), h = tg_rng_seed(9);
    tg_images dst;
    cr_assert_eq(tg_images_binarize(&src, &dst, &r), 0);
    float *x = malloc(sizeof(float) * N * 784);
    for (int64_t i = 0; i < N * 784; i++) {
        cr_assert_eq(dst.pixels[i], tg_rng_uniform(&h) < src.pixels[i] / 255.0 ? 255 : 0, "pixel %lld", (long long)i);
        x[i] = (float)src.pixels[i] / 255.0f;
    }
    tg_binarize_f32(x, N * 784, &r);   /* continues the stream */
    for (int64_t i = 0; i < N * 784; i++)
        cr_assert_eq(x[i], tg_rng_uniform(&h) < (float)src.pixels[i] / 255.0f ? 1.0f : 0.0f, "value %lld", (long long)i);
    tg_images_free(&dst);
    free(x);
    free(src.pixels);
}

/* ================================================================ a run's images */

static tg_dataset synthetic(void) {
    tg_dataset ds = {0};
    tg_images *x[2] = {&ds.train_x, &ds.test_x};
    tg_labels *y[2] = {&ds.train_y, &ds.test_y};
    const int n[2] = {TG_CLI_NTRAIN, TG_CLI_NTEST};
    const uint32_t seed[2] = {7, 11};
    for (int s = 0; s < 2; s++) {
        *x[s] = (tg_images){.n = n[s], .rows = 28, .cols = 28, .pixels = malloc((size_t)n[s] * 784)};
        *y[s] = (tg_labels){.n = n[s], .classes = 10, .labels = malloc((size_t)n[s])};
        tg_cli_make_images(x[s]->pixels, y[s]->labels, n[s], seed[s]);
    }
    return ds;
}

static bool same(const tg_images *a, const uint8_t *b) {
    return a->pixels && !memcmp(a->pixels, b, (size_t)(a->n * a->rows * a->cols));
}

/* The trainer's images (tg_train_images with a generator seeded seed + 3, as
 * examples/vae/train.c seeds it) and eval's test images (tg_run_test_images) are
 * the documented draws, for every mode and two seeds. */
Test(binarize, trainer_and_eval_images_follow_the_rule) {
    tg_dataset ds = synthetic();
    const int64_t ntr = ds.train_x.n * 784, nte = ds.test_x.n * 784;
    uint8_t *want_tr = malloc((size_t)ntr), *want_te = malloc((size_t)nte);
    const uint64_t seeds[] = {1, 5};
    const tg_binarize modes[] = {TG_BINARIZE_NONE, TG_BINARIZE_STATIC, TG_BINARIZE_DYNAMIC};
    for (int si = 0; si < 2; si++) {
        for (int mi = 0; mi < 3; mi++) {
            const tg_binarize mode = modes[mi];
            const uint64_t seed = seeds[si];
            tg_hand_binarize(mode, seed, &ds.train_x, &ds.test_x, want_tr, want_te);
            tg_err e;
            tg_images tr, te, te2, ev;
            tg_rng r = tg_rng_seed(seed + 3);
            cr_assert_eq(tg_train_images(mode, &r, &ds, &tr, &te, &e), 0, "%s", e.msg);
            r = tg_rng_seed(seed + 3);
            cr_assert_eq(tg_train_images(mode, &r, &ds, NULL, &te2, &e), 0, "%s", e.msg);
            tg_run_info ri = {.o = tg_train_opts_default(), .rows = 28, .cols = 28};
            ri.o.binarize = mode, ri.o.seed = seed;
            cr_assert_eq(tg_run_test_images(&ri, &ds, &ev, &e), 0, "%s", e.msg);

            cr_expect(same(&ev, want_te), "mode %d, seed %llu: eval's test images are not the documented ones", mode,
                      (unsigned long long)seed);
            if (mode == TG_BINARIZE_NONE) {
                cr_expect(!tr.pixels && !te.pixels && !te2.pixels, "none: the dataset's own images are used");
                cr_expect(same(&ev, ds.test_x.pixels), "none: eval's test images are the gray ones");
            } else {
                cr_expect(same(&te, want_te), "mode %d, seed %llu: the trainer's test images", mode,
                          (unsigned long long)seed);
                cr_expect(same(&te2, te.pixels), "mode %d: the test images depend on whether train is asked for", mode);
                cr_expect(same(&ev, te.pixels), "mode %d, seed %llu: eval and the trainer test on different images",
                          mode, (unsigned long long)seed);
                if (mode == TG_BINARIZE_STATIC)
                    cr_expect(same(&tr, want_tr), "static, seed %llu: the training images", (unsigned long long)seed);
                else
                    cr_expect(!tr.pixels, "dynamic: the training batches are drawn anew, not stored");
            }
            tg_images_free(&tr), tg_images_free(&te), tg_images_free(&te2), tg_images_free(&ev);
        }
    }
    free(want_tr), free(want_te);
    tg_dataset_free(&ds);
}
