/*
 * test_vae_sample.c — `vae sample --temperature T` (examples/vae/main.c,
 * tg_run_sample in examples/vae/evaluate.c) run as a user runs it: build/vae trains
 * on the tiny synthetic IDX dataset of vae_cli.h, then samples to IDX files.
 *
 * The images are checked against the decoder computed here by hand in double
 * from the run's parameters: z = mu_p + T exp(logvar_p / 2) eps, eps the
 * normals of a generator seeded --seed drawn row by row (n, L), mu_p and
 * logvar_p the learned prior's Linear on onehot(y) (zero for N(0, I)), then
 * [z, onehot(y)] -> ReLU layers -> logits -> sigmoid, quantised. The binary
 * computes in float32, so a pixel may differ by one level at a rounding edge.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"
#include "examples/vae/evaluate.h"
#include "io/png.h"

#include "tests/hand_vae.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define SMALL "--epochs 2 --batch 16 --hidden 32 --latent 4 --threads 1"

TestSuite(vae_sample, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* `vae sample --run <tmp>/<run> --out <tmp>/<file> ARGS`, asserted to succeed;
 * returns the n images read back (malloc'd). */
static uint8_t *sample(const char *run, const char *file, const char *args, int64_t n) {
    char a[2048], path[512];
    snprintf(path, sizeof path, "%s", tg_tmp(file));
    snprintf(a, sizeof a, "sample --run %s --out %s --threads 1 %s", tg_tmp(run), path, args);
    int rc = tg_cli_run(a);
    cr_assert_eq(rc, 0, "vae %s: exit %d: %s", a, rc, tg_cli_text("stderr"));
    tg_images x;
    tg_err e;
    cr_assert_eq(tg_idx_images_load(path, &x, &e), 0, "%s", e.msg);
    cr_assert(x.n == n && x.rows == 28 && x.cols == 28, "%s: %lld images", path, (long long)x.n);
    uint8_t *px = malloc((size_t)(n * 28 * 28));
    memcpy(px, x.pixels, (size_t)(n * 28 * 28));
    tg_images_free(&x);
    return px;
}

/* The run's images by hand (tests/hand_vae.h); label < 0: class i % K for
 * image i. no_prior: treat a learned prior as N(0, I) (the wrong answer, to
 * show the check can fail). */
static void by_hand(const char *run, int64_t n, int label, double T, uint64_t seed, bool no_prior, uint8_t *out) {
    tg_hand_vae m;
    tg_hand_vae_load(tg_tmp(run), &m);
    cr_assert(!m.gaussian);
    if (no_prior) m.prior.w = NULL;
    int *labels = malloc(sizeof(int) * (size_t)n);
    for (int64_t i = 0; i < n; i++) labels[i] = m.K ? (label >= 0 ? label : (int)(i % m.K)) : -1;
    tg_hand_vae_sample(&m, n, m.K ? labels : NULL, T, seed, out);
    free(labels);
    tg_hand_vae_free(&m);
}

static void expect_by_hand(const char *run, const uint8_t *got, int64_t n, int label, double T, uint64_t seed) {
    const int64_t np = n * 28 * 28;
    uint8_t *want = malloc((size_t)np);
    by_hand(run, n, label, T, seed, false, want);
    char what[256];
    snprintf(what, sizeof what, "%s, label %d, T %g, seed %llu", run, label, T, (unsigned long long)seed);
    tg_hand_expect_close(what, got, want, np);
    free(want);
}

static bool same_images(const uint8_t *a, const uint8_t *c, int64_t n) { return !memcmp(a, c, (size_t)(n * 28 * 28)); }

/* ================================================================ T = 0 */

/* n images at T = 0 (classes i % K): the same for seeds 1, 2 and 987654321,
 * and the decoded prior mean; returns them (malloc'd). */
static uint8_t *at_zero(const char *run, int64_t n) {
    uint8_t *x = NULL;
    static const char *const seeds[] = {"1", "2", "987654321"};
    for (int i = 0; i < 3; i++) {
        char a[128];
        snprintf(a, sizeof a, "--n %lld --temperature 0 --seed %s", (long long)n, seeds[i]);
        uint8_t *y = sample(run, "zero.idx", a, n);
        if (!x) {
            x = y;
            continue;
        }
        cr_expect(same_images(x, y, n), "%s: T = 0 differs between seeds 1 and %s", run, seeds[i]);
        free(y);
    }
    expect_by_hand(run, x, n, -1, 0, 1);
    return x;
}

Test(vae_sample, zero_is_the_learned_prior_mean) {
    tg_cli_train("data", "run", "--model cvae --prior learned " SMALL);
    uint8_t *a = at_zero("run", 10);   /* one image of each class */
    /* The check can tell mu_p(y) from 0 and from a sample: decoding z = 0
     * (the N(0, I) mean) and z ~ p(z | y) give other images. */
    uint8_t *at0 = malloc(10 * 28 * 28);
    by_hand("run", 10, -1, 0, 1, true, at0);
    int64_t same;
    cr_expect_gt(tg_hand_far_pixels(a, at0, 10 * 28 * 28, &same), 100, "mu_p(y) and 0 decode to nearly the same images");
    uint8_t *t1 = sample("run", "t1.idx", "--n 10 --temperature 1", 10);
    cr_expect_gt(tg_hand_far_pixels(a, t1, 10 * 28 * 28, &same), 100, "T = 0 and T = 1 give nearly the same images");
    /* --label: every image the class's prior mean. */
    uint8_t *l3 = sample("run", "l3.idx", "--n 3 --label 3 --temperature 0 --seed 5", 3);
    for (int i = 0; i < 3; i++) cr_expect(!memcmp(l3 + i * 784, a + 3 * 784, 784), "T = 0, label 3: image %d", i);
    free(a), free(at0), free(t1), free(l3);
}

Test(vae_sample, zero_is_zero_for_the_standard_prior) {
    tg_cli_train("data", "cvae", "--model cvae " SMALL);
    free(at_zero("cvae", 10));
    tg_cli_train("data", "vae", "--model vae " SMALL);
    uint8_t *a = at_zero("vae", 4);
    for (int i = 1; i < 4; i++) cr_expect(!memcmp(a, a + i * 784, 784), "vae, T = 0: image %d differs from image 0", i);
    uint8_t *c = sample("vae", "c.idx", "--n 4 --temperature -0", 4);
    cr_expect(same_images(a, c, 4), "--temperature -0 is not 0");
    free(a), free(c);
}

/* ================================================================ T > 0 */

Test(vae_sample, temperature_scales_the_prior_std) {
    tg_cli_train("data", "run", "--model cvae --prior learned " SMALL);
    uint8_t *def = sample("run", "def.idx", "--n 20 --seed 4", 20);
    uint8_t *t1 = sample("run", "t1.idx", "--n 20 --seed 4 --temperature 1", 20);
    cr_expect(same_images(def, t1, 20), "the default is not --temperature 1");
    expect_by_hand("run", t1, 20, -1, 1, 4);
    uint8_t *h = sample("run", "h.idx", "--n 20 --seed 4 --temperature 0.5", 20);
    expect_by_hand("run", h, 20, -1, 0.5, 4);
    uint8_t *g = sample("run", "g.idx", "--n 20 --seed 4 --temperature 2.5 --label 7", 20);
    expect_by_hand("run", g, 20, 7, 2.5, 4);
    uint8_t *t1b = sample("run", "t1b.idx", "--n 20 --seed 5", 20);
    cr_expect(!same_images(t1, t1b, 20), "T = 1 does not depend on the seed");
    free(def), free(t1), free(h), free(g), free(t1b);

    tg_cli_train("data", "vae", "--model vae " SMALL);
    uint8_t *v = sample("vae", "v.idx", "--n 6 --seed 2 --temperature 0.25", 6);
    expect_by_hand("vae", v, 6, -1, 0.25, 2);
    free(v);
}

/* ================================================================ errors */

Test(vae_sample, temperature_flag_errors) {
    tg_cli_train("data", "run", "--model cvae --prior learned --epochs 1 --batch 16 --hidden 32 --latent 4 --threads 1");
    static const char *const bad[] = {"-1", "-1e-300", "nan", "NAN", "-nan", "inf", "-inf", "1e999", "abc", "",
                                      "0.5x", "1,5", "--n"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char a[2048];
        snprintf(a, sizeof a, "sample --run %s --out %s --temperature '%s'", tg_tmp("run"), tg_tmp("o.idx"), bad[i]);
        int rc = tg_cli_run(a);
        char *err = tg_cli_text("stderr");
        cr_expect_eq(rc, 2, "vae %s: exit %d (%s)", a, rc, err);
        cr_expect(strstr(err, "--temperature"), "vae %s: message does not name --temperature: %s", a, err);
        cr_expect(strchr(err, '\n') == strrchr(err, '\n'), "one line expected: %s", err);
        free(err);
    }
    /* A missing value. */
    char a[2048];
    snprintf(a, sizeof a, "sample --run %s --out %s --temperature", tg_tmp("run"), tg_tmp("o.idx"));
    cr_expect_eq(tg_cli_run(a), 2);
    char *err = tg_cli_text("stderr");
    cr_expect(strstr(err, "--temperature") && strstr(err, "missing"), "%s", err);
    free(err);
    cr_expect(access(tg_tmp("o.idx"), F_OK) != 0, "a flag error wrote the output");
    /* --help names the flag. */
    cr_expect_eq(tg_cli_run("sample --help"), 0);
    char *help = tg_cli_text("stdout");
    cr_expect(strstr(help, "--temperature"), "%s", help);
    free(help);
}
