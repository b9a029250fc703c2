/*
 * test_vae_pictures.c — pictures of a run's latent and its codes, as a user
 * runs them (examples/vae/main.c): build/vae trains on the tiny synthetic
 * dataset of vae_cli.h, then
 *   vae sample --traverse | --interpolate I,J | --manifold   (Gaussian latent)
 *
 * Every picture is checked against images computed here in-process from the
 * run read back (tg_run_model_load) through the model interface alone
 * (tg_model_encode, tg_model_decode, tg_model_pixels): the posterior means of
 * the test images, the latent values of each tile worked out here (the
 * normal quantiles by bisection on erfc, not the program's approximation).
 * Same float32 code on both
 * sides, so the pixels must match exactly.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "data/data.h"
#include "examples/vae/evaluate.h"
#include "io/png.h"

#include "tests/png_read.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define TINY "--epochs 1 --batch 16 --hidden 32 --threads 1"
#define VQ "--model vq-vae --codes 8 --code-dim 4 --epochs 1 --batch 16 --threads 1"
#define D 784

TestSuite(vae_pictures, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

static void train(const char *out, const char *args) {
    char a[2048];
    snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp("data"), tg_tmp(out), args);
    int rc = tg_cli_run(a);
    cr_assert_eq(rc, 0, "vae %s: exit %d: %s", a, rc, tg_cli_text("stderr"));
}

/* Runs `vae FMT...` and returns its exit code; the command in last_cmd. */
static char last_cmd[4096];
static int vae(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_cmd, sizeof last_cmd, fmt, ap);
    va_end(ap);
    return tg_cli_run(last_cmd);
}

static void vae_ok(int rc) {
    if (rc != 0) cr_assert_fail("vae %s: exit %d: %s", last_cmd, rc, tg_cli_text("stderr"));
}

/* ---------------------------------------------------------------- the run, in-process */

typedef struct {
    tg_run_info ri;
    tg_model m;
    tg_params *ps;
    tg_dataset ds;
    tg_images test;   /* as the run's trainer saw it */
} loaded;

static void load(const char *run, const char *data, loaded *r) {
    tg_err e;
    cr_assert_eq(tg_run_info_load(tg_tmp(run), &r->ri, &e), 0, "%s", e.msg);
    r->ps = tg_run_model_load(tg_tmp(run), &r->ri, &r->m, &e);
    cr_assert(r->ps, "%s", e.msg);
    cr_assert_eq(tg_dataset_load(tg_tmp(data), &r->ds, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_run_test_images(&r->ri, &r->ds, &r->test, &e), 0, "%s", e.msg);
}

static void unload(loaded *r) {
    tg_images_free(&r->test);
    tg_dataset_free(&r->ds);
    tg_model_free(&r->m);
    tg_params_free(r->ps);
}

static tg_tensor *labels_of(tg_tape *t, const loaded *r, int64_t n, int label) {
    if (!r->m.type->conditional) return NULL;
    tg_tensor *y = tg_tensor_new(tg_tape_arena(t), TG_I64, TG_SHAPE(n));
    for (int64_t i = 0; i < n; i++) TG_I64P(y)[i] = label;
    return y;
}

/* The posterior mean (L floats) of test image i with the image's own label. */
static void mean_of(const loaded *r, int64_t i, float *mu) {
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    tg_tensor *x = tg_tensor_new(tg_tape_arena(t), TG_F32, TG_SHAPE(1, D));
    for (int j = 0; j < D; j++) TG_F32P(x)[j] = (float)r->test.pixels[i * D + j] / 255.0f;
    tg_var *mu_v = tg_model_encode(t, &r->m, tg_leaf(t, x, false), labels_of(t, r, 1, r->ds.test_y.labels[i]));
    cr_assert(mu_v->val.dtype == TG_F32 && mu_v->val.numel == r->ri.o.latent);
    memcpy(mu, mu_v->val.data, sizeof(float) * (size_t)r->ri.o.latent);
    tg_tape_free(t);
}

/* The image (D bytes) the model decodes z (L floats) to, with label. */
static void decode_z(const loaded *r, const float *z, int label, uint8_t *out) {
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    const int64_t L = r->ri.o.latent;
    tg_tensor *zt = tg_tensor_new(tg_tape_arena(t), TG_F32, TG_SHAPE(1, L));
    memcpy(zt->data, z, sizeof(float) * (size_t)L);
    tg_var *px = tg_model_pixels(t, &r->m, tg_model_decode(t, &r->m, tg_leaf(t, zt, false), labels_of(t, r, 1, label)));
    for (int j = 0; j < D; j++) out[j] = tg_png_pixel_from_f32(TG_F32P(&px->val)[j]);
    tg_tape_free(t);
}

/* The n tiles of the PNG grid <tmp>/file of cols tiles per row (pad 2), checking its layout. */
static uint8_t *tiles(const char *file, int64_t n, int64_t cols) {
    tg_png_img g = tg_png_read(tg_tmp(file));
    int64_t c = cols < n ? cols : n, rows = (n + c - 1) / c;
    cr_assert(g.w == c * 30 + 2 && g.h == rows * 30 + 2, "%s: %lldx%lld pixels, expected %lld rows of %lld tiles",
              file, (long long)g.w, (long long)g.h, (long long)rows, (long long)c);
    uint8_t *t = malloc((size_t)(n * D));
    tg_png_grid_tiles(&g, n, 28, 28, cols, 2, t);
    tg_png_free(&g);
    return t;
}

static void expect_tile(const uint8_t *tile, const uint8_t *want, const char *what) {
    int64_t diff = 0, first = -1;
    for (int j = 0; j < D; j++)
        if (tile[j] != want[j]) diff++, first = first < 0 ? j : first;
    cr_expect_eq(diff, 0, "%s: %lld pixels differ (the first at %lld: %d, expected %d)", what, (long long)diff,
                 (long long)first, first >= 0 ? tile[first] : 0, first >= 0 ? want[first] : 0);
}

/* True if the two images differ: the checks can tell the tiles apart. */
static bool differ(const uint8_t *a, const uint8_t *b) { return memcmp(a, b, D) != 0; }

/* ================================================================ traversal */

/* Row l, column j of the traversal decodes the posterior mean with z_l set
 * to -3 + 6 j / (cols - 1): checked at -3, 0 (the middle) and 3, exactly
 * representable, for every row. */
static void check_traversal(const char *run, const char *file, int64_t image, int64_t cols) {
    loaded r;
    load(run, "data", &r);
    const int64_t L = r.ri.o.latent;
    uint8_t *t = tiles(file, L * cols, cols), want[D];
    float mu[8] = {0}, z[8];
    cr_assert(L <= 8);
    mean_of(&r, image, mu);
    const int label = r.ds.test_y.labels[image];
    const int64_t at[3] = {0, cols / 2, cols - 1};
    const float val[3] = {-3, 0, 3};
    for (int64_t l = 0; l < L; l++)
        for (int k = 0; k < 3; k++) {
            memcpy(z, mu, sizeof mu);
            z[l] = val[k];
            decode_z(&r, z, label, want);
            char what[128];
            snprintf(what, sizeof what, "%s: dimension %lld at %g (tile %lld)", file, (long long)l, val[k],
                     (long long)(l * cols + at[k]));
            expect_tile(t + (l * cols + at[k]) * D, want, what);
        }
    /* The traversal moves: its ends differ. */
    cr_expect(differ(t, t + (cols - 1) * D), "%s: z_0 = -3 and 3 decode to the same image", file);
    free(t);
    unload(&r);
}

Test(vae_pictures, traverse_rows_are_dimensions_columns_values) {
    train("v", "--latent 3 " TINY);
    vae_ok(vae("sample --run %s --traverse --out %s --threads 1", tg_tmp("v"), tg_tmp("t.png")));
    check_traversal("v", "t.png", 0, 11);   /* the defaults: image 0, 11 columns */
    vae_ok(vae("sample --run %s --traverse --image 7 --cols 5 --out %s", tg_tmp("v"), tg_tmp("t5.png")));
    check_traversal("v", "t5.png", 7, 5);
    /* IDX: the same images, in the grid's order. */
    vae_ok(vae("sample --run %s --traverse --image 7 --cols 5 --out %s", tg_tmp("v"), tg_tmp("t5.idx")));
    tg_images x;
    tg_err e;
    cr_assert_eq(tg_idx_images_load(tg_tmp("t5.idx"), &x, &e), 0, "%s", e.msg);
    uint8_t *t = tiles("t5.png", 15, 5);
    cr_expect(x.n == 15 && !memcmp(x.pixels, t, 15 * D), "t5.idx: not the tiles of t5.png");
    tg_images_free(&x);
    free(t);
}

Test(vae_pictures, traverse_a_cvae_with_the_images_label) {
    train("c", "--model cvae --latent 2 " TINY);
    vae_ok(vae("sample --run %s --traverse --image 5 --cols 3 --out %s", tg_tmp("c"), tg_tmp("t.png")));
    check_traversal("c", "t.png", 5, 3);   /* test image 5 is of class 5 */
}

/* ================================================================ interpolation */

Test(vae_pictures, interpolate_from_one_posterior_mean_to_the_other) {
    train("v", "--latent 2 " TINY);
    vae_ok(vae("sample --run %s --interpolate 3,17 --steps 7 --out %s", tg_tmp("v"), tg_tmp("i.png")));
    loaded r;
    load("v", "data", &r);
    uint8_t *t = tiles("i.png", 7, 7), a[D], b[D], mid[D];
    float mu_a[2], mu_b[2], z[2];
    mean_of(&r, 3, mu_a);
    mean_of(&r, 17, mu_b);
    decode_z(&r, mu_a, 0, a);
    decode_z(&r, mu_b, 0, b);
    for (int l = 0; l < 2; l++) z[l] = (float)(0.5 * mu_a[l] + 0.5 * mu_b[l]);
    decode_z(&r, z, 0, mid);
    expect_tile(t, a, "the first tile (mu_3)");
    expect_tile(t + 6 * D, b, "the last tile (mu_17)");
    expect_tile(t + 3 * D, mid, "the middle tile ((mu_3 + mu_17) / 2)");
    cr_expect(differ(a, b), "images 3 and 17 decode alike: the check cannot tell them apart");
    free(t);
    /* The default: 10 steps, one row. */
    vae_ok(vae("sample --run %s --interpolate 17,3 --out %s", tg_tmp("v"), tg_tmp("i10.png")));
    t = tiles("i10.png", 10, 10);
    expect_tile(t, b, "10 steps, the first tile (mu_17)");
    expect_tile(t + 9 * D, a, "10 steps, the last tile (mu_3)");
    free(t);
    unload(&r);
}

Test(vae_pictures, interpolate_a_cvae_ends_with_each_images_label) {
    train("c", "--model cvae --latent 2 " TINY);
    vae_ok(vae("sample --run %s --interpolate 2,9 --steps 4 --out %s", tg_tmp("c"), tg_tmp("i.png")));
    loaded r;
    load("c", "data", &r);
    uint8_t *t = tiles("i.png", 4, 4), want[D];
    float mu[2];
    mean_of(&r, 2, mu);
    decode_z(&r, mu, 2, want);
    expect_tile(t, want, "the first tile (image 2, class 2)");
    mean_of(&r, 9, mu);
    decode_z(&r, mu, 9, want);
    expect_tile(t + 3 * D, want, "the last tile (image 9, class 9)");
    free(t);
    unload(&r);
}

/* ================================================================ the 2-D manifold */

/* Phi^-1(p) by bisection on Phi(x) = erfc(-x / sqrt 2) / 2, to the last bit. */
static double quantile(double p) {
    double lo = -40, hi = 40;
    for (int i = 0; i < 200; i++) {
        double mid = (lo + hi) / 2;
        if (0.5 * erfc(-mid / sqrt(2.0)) < p) lo = mid;
        else hi = mid;
    }
    return (lo + hi) / 2;
}

Test(vae_pictures, normal_quantile) {
    static const double p[] = {1e-300, 1e-10, 0.001, 0.02, 0.02425, 0.025, 0.1, 0.3, 0.5, 0.7, 0.975, 0.99};
    for (size_t i = 0; i < sizeof p / sizeof *p; i++) {
        double got = tg_normal_quantile(p[i]), want = quantile(p[i]);
        cr_expect(fabs(got - want) <= 1e-13 * fmax(1, fabs(want)), "Phi^-1(%g) = %.17g, expected %.17g", p[i], got, want);
    }
    cr_expect_eq(tg_normal_quantile(0.5), 0.0);
    cr_expect(fabs(tg_normal_quantile(0.975) - 1.959963984540054) < 1e-14);
}

Test(vae_pictures, manifold_decodes_the_normal_quantiles) {
    train("v", "--latent 2 " TINY);
    vae_ok(vae("sample --run %s --manifold --steps 5 --out %s", tg_tmp("v"), tg_tmp("m.png")));
    loaded r;
    load("v", "data", &r);
    uint8_t *t = tiles("m.png", 25, 5), want[D];
    /* Row i, column j: z = (Phi^-1((j + 1/2) / 5), Phi^-1((i + 1/2) / 5)). */
    static const int cells[][2] = {{2, 2}, {0, 4}, {3, 1}, {4, 0}, {1, 2}};
    for (size_t k = 0; k < sizeof cells / sizeof *cells; k++) {
        int i = cells[k][0], j = cells[k][1];
        float z[2] = {(float)quantile((j + 0.5) / 5), (float)quantile((i + 0.5) / 5)};
        decode_z(&r, z, 0, want);
        char what[128];
        snprintf(what, sizeof what, "m.png row %d column %d (z = %g, %g)", i, j, z[0], z[1]);
        expect_tile(t + (i * 5 + j) * D, want, what);
    }
    cr_expect(differ(t, t + 24 * D), "the manifold's corners decode alike");
    free(t);
    /* The default: 20 x 20. */
    vae_ok(vae("sample --run %s --manifold --out %s", tg_tmp("v"), tg_tmp("m20.png")));
    t = tiles("m20.png", 400, 20);
    float z[2] = {(float)quantile(10.5 / 20), (float)quantile(3.5 / 20)};
    decode_z(&r, z, 0, want);
    expect_tile(t + (3 * 20 + 10) * D, want, "m20.png row 3 column 10");
    free(t);
    unload(&r);
}

Test(vae_pictures, manifold_of_a_learned_prior_is_its_quantiles) {
    train("c", "--model cvae --prior learned --latent 2 " TINY);
    vae_ok(vae("sample --run %s --manifold --steps 3 --label 4 --out %s", tg_tmp("c"), tg_tmp("m.png")));
    /* The centre is the prior mean of class 4, as `vae sample --temperature 0` decodes it. */
    vae_ok(vae("sample --run %s --n 1 --label 4 --temperature 0 --out %s", tg_tmp("c"), tg_tmp("p.png")));
    uint8_t *t = tiles("m.png", 9, 3), *p = tiles("p.png", 1, 8);
    expect_tile(t + 4 * D, p, "the centre (mu_p(4))");
    /* A corner: mu_p + sigma_p (q_2, q_0), from the model's prior computed here. */
    loaded r;
    load("c", "data", &r);
    tg_tape *tp = tg_tape_new();
    tg_no_grad(tp);
    tg_var *mu, *lv;
    r.m.type->prior(tp, r.m.self, 1, labels_of(tp, &r, 1, 4), &mu, &lv);
    const double q[2] = {quantile(2.5 / 3), quantile(0.5 / 3)};
    float z[2];
    for (int l = 0; l < 2; l++)
        z[l] = (float)(tg_tensor_get(&mu->val, l) + exp(tg_tensor_get(&lv->val, l) / 2) * q[l]);
    cr_expect(fabs(tg_tensor_get(&lv->val, 0)) > 1e-6 || fabs(tg_tensor_get(&mu->val, 0)) > 1e-6,
              "the learned prior is N(0, I): the check cannot tell it from the standard one");
    tg_tape_free(tp);
    uint8_t want[D];
    decode_z(&r, z, 4, want);
    expect_tile(t + 2 * D, want, "row 0, column 2");
    free(t), free(p);
    unload(&r);
}

/* ================================================================ sample's flag errors */

Test(vae_pictures, picture_flag_errors) {
    train("v", "--latent 3 " TINY);
    train("q", VQ);
    char v[512], q[512], out[512];   /* tg_tmp's buffers rotate */
    snprintf(v, sizeof v, "%s", tg_tmp("v"));
    snprintf(q, sizeof q, "%s", tg_tmp("q"));
    snprintf(out, sizeof out, "%s", tg_tmp("o.png"));
    static const char *const bad_pair[] = {"1", "1,", ",2", "a,b", "1,2,3", "-1,2", "1,-2", "1;2", "", "99999999999,1"};
    for (size_t i = 0; i < sizeof bad_pair / sizeof *bad_pair; i++) {
        int rc = vae("sample --run %s --out %s --interpolate '%s'", v, out, bad_pair[i]);
        tg_cli_expect_error(last_cmd, rc, 2, (const char *const[]){"--interpolate", NULL});
    }
    struct {
        const char *args, *needle;
    } cases[] = {
        {"--interpolate 0,32", "--interpolate"},   /* the test set has 32 images */
        {"--interpolate 32,0", "--interpolate"},
        {"--traverse --image 32", "--image"},
        {"--traverse --cols 1", "--cols"},
        {"--traverse --cols 257", "--cols"},
        {"--cols 5", "--cols"},
        {"--image 2", "--image"},
        {"--steps 5", "--steps"},
        {"--traverse --steps 5", "--steps"},
        {"--interpolate 0,1 --steps 1", "--steps"},
        {"--manifold --steps 0", "--steps"},
        {"--traverse --manifold", "--manifold"},
        {"--interpolate 0,1 --traverse", "--traverse"},
        {"--traverse --temperature 0", "--temperature"},
        {"--manifold --n 4", "--n"},
        {"--interpolate 0,1 --seed 2", "--seed"},
        {"--manifold --data /nonexistent", "--data"},
        {"--data /nonexistent", "--data"},
        {"--manifold", "--manifold"},   /* latent 3 */
        {"--traverse --label 1", "--label"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = vae("sample --run %s --out %s %s", v, out, cases[i].args);
        tg_cli_expect_error(last_cmd, rc, 2, (const char *const[]){cases[i].needle, NULL});
    }
    int rc = vae("sample --run %s --out %s --manifold", v, out);
    tg_cli_expect_error(last_cmd, rc, 2, (const char *const[]){"--manifold", "2", "3", NULL});
    static const char *const discrete[] = {"--traverse", "--interpolate 0,1", "--manifold"};
    for (int i = 0; i < 3; i++) {
        rc = vae("sample --run %s --out %s %s", q, out, discrete[i]);
        char flag[32];
        snprintf(flag, sizeof flag, "%.*s", (int)strcspn(discrete[i], " "), discrete[i]);
        tg_cli_expect_error(last_cmd, rc, 2, (const char *const[]){flag, "discrete", "vq-vae", NULL});
    }
    cr_expect(access(out, F_OK) != 0, "a refused command wrote %s", out);
    /* --help names the new flags. */
    vae_ok(vae("sample --help"));
    char *help = tg_cli_text("stdout");
    static const char *const named[] = {"--traverse", "--interpolate", "--manifold", "--image", "--cols", "--steps"};
    for (int i = 0; i < 6; i++) cr_expect(strstr(help, named[i]), "sample --help lacks %s", named[i]);
    free(help);
}
