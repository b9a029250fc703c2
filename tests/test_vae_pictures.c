/*
 * test_vae_pictures.c — pictures of a run's latent and its codes, as a user
 * runs them (examples/vae/main.c): build/vae trains on the tiny synthetic
 * dataset of vae_cli.h, then
 *   vae sample --traverse | --interpolate I,J | --manifold   (Gaussian latent)
 *   vae encode / vae decode                                  (vq-vae codes)
 *
 * Every picture is checked against images computed here in-process from the
 * run read back (tg_run_model_load) through the model interface alone
 * (tg_model_encode, tg_model_decode, tg_model_pixels): the posterior means of
 * the test images, the latent values of each tile worked out here (the
 * normal quantiles by bisection on erfc, not the program's approximation),
 * and the codes file unpacked here bit by bit. Same float32 code on both
 * sides, so the pixels must match exactly.
 */
#include <criterion/criterion.h>
#include <dirent.h>
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
    tg_cli_train("data", "v", "--latent 3 " TINY);
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
    tg_cli_train("data", "c", "--model cvae --latent 2 " TINY);
    vae_ok(vae("sample --run %s --traverse --image 5 --cols 3 --out %s", tg_tmp("c"), tg_tmp("t.png")));
    check_traversal("c", "t.png", 5, 3);   /* test image 5 is of class 5 */
}

/* ================================================================ interpolation */

Test(vae_pictures, interpolate_from_one_posterior_mean_to_the_other) {
    tg_cli_train("data", "v", "--latent 2 " TINY);
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
    tg_cli_train("data", "c", "--model cvae --latent 2 " TINY);
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
    tg_cli_train("data", "v", "--latent 2 " TINY);
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
    tg_cli_train("data", "c", "--model cvae --prior learned --latent 2 " TINY);
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
    tg_cli_train("data", "v", "--latent 3 " TINY);
    tg_cli_train("data", "q", VQ);
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

/* ================================================================ codes */

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The codes (n, G) of a codes file unpacked here: a 64-bit window over the
 * little-endian bit stream, `bits` at a time. Checks the header and size. */
static int64_t *unpack(const char *file, int64_t K, int64_t G, int64_t n, int bits) {
    size_t size;
    uint8_t *f = tg_slurp(tg_tmp(file), &size);
    cr_assert_eq(size, 20 + (size_t)((n * G * bits + 7) / 8), "%s: %zu bytes", file, size);
    cr_assert(!memcmp(f, "TGVQ", 4), "%s: magic", file);
    cr_assert(le32(f + 4) == 1 && le32(f + 8) == K && le32(f + 12) == G && le32(f + 16) == n,
              "%s: header version %u, K %u, G %u, n %u", file, le32(f + 4), le32(f + 8), le32(f + 12), le32(f + 16));
    int64_t *c = malloc(sizeof(int64_t) * (size_t)(n * G));
    uint64_t window = 0;
    int have = 0;
    size_t next = 20;
    for (int64_t i = 0; i < n * G; i++) {
        while (have < bits) window |= (uint64_t)(next < size ? f[next] : 0) << have, next++, have += 8;
        c[i] = (int64_t)(window & ((1u << bits) - 1));
        window >>= bits, have -= bits;
    }
    free(f);
    return c;
}

/* The codes of every test image, computed here in one batch. */
static int64_t *codes_here(const loaded *r, int64_t *G) {
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    const int64_t n = r->test.n;
    tg_tensor *x = tg_tensor_new(tg_tape_arena(t), TG_F32, TG_SHAPE(n, D));
    for (int64_t j = 0; j < n * D; j++) TG_F32P(x)[j] = (float)r->test.pixels[j] / 255.0f;
    tg_var *c = tg_model_encode(t, &r->m, tg_leaf(t, x, false), NULL);
    cr_assert(c->val.dtype == TG_I64 && c->val.shape.ndim == 2 && c->val.shape.d[0] == n);
    *G = c->val.shape.d[1];
    int64_t *out = malloc(sizeof(int64_t) * (size_t)c->val.numel);
    memcpy(out, c->val.data, sizeof(int64_t) * (size_t)c->val.numel);
    tg_tape_free(t);
    return out;
}

/* The images (n, D) decoded here from codes (n, G), in one batch. */
static uint8_t *decode_codes_here(const loaded *r, const int64_t *codes, int64_t n, int64_t G) {
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    tg_tensor *c = tg_tensor_new(tg_tape_arena(t), TG_I64, TG_SHAPE(n, G));
    memcpy(c->data, codes, sizeof(int64_t) * (size_t)(n * G));
    tg_var *px = tg_model_pixels(t, &r->m, tg_model_decode(t, &r->m, tg_leaf(t, c, false), NULL));
    uint8_t *out = malloc((size_t)(n * D));
    for (int64_t j = 0; j < n * D; j++) out[j] = tg_png_pixel_from_f32(TG_F32P(&px->val)[j]);
    tg_tape_free(t);
    return out;
}

/* encode -> the file holds the codes computed here, packed at bits each;
 * decode -> the images decoded here from them, as IDX and as PNG. */
static void round_trip(const char *run, const char *data, int64_t K, int bits) {
    loaded r;
    load(run, data, &r);
    const int64_t n = r.test.n;
    int64_t G;
    int64_t *want = codes_here(&r, &G);
    cr_assert_eq(G, 49);
    char data_flag[600] = "";
    if (strcmp(data, "data")) snprintf(data_flag, sizeof data_flag, "--data %s", tg_tmp(data));
    vae_ok(vae("encode --run %s --out %s %s", tg_tmp(run), tg_tmp("c.bin"), data_flag));
    /* The figures printed: bytes per image and the ratio to the 784-byte image. */
    char *so = tg_cli_text("stdout"), per[64], ratio[64];
    snprintf(per, sizeof per, "%g bytes per image", (double)(G * bits) / 8);
    snprintf(ratio, sizeof ratio, "%.2f times smaller", 784.0 / ((double)(G * bits) / 8));
    cr_expect(strstr(so, per) && strstr(so, ratio) && strstr(so, "784"), "encode printed: %s (expected %s, %s)", so,
              per, ratio);
    free(so);
    int64_t *got = unpack("c.bin", K, G, n, bits);
    for (int64_t i = 0; i < n * G; i++)
        if (got[i] != want[i]) {
            cr_expect_fail("c.bin: code %lld of image %lld is %lld, computed %lld", (long long)(i % G),
                           (long long)(i / G), (long long)got[i], (long long)want[i]);
            break;
        }
    uint8_t *img = decode_codes_here(&r, want, n, G);
    vae_ok(vae("decode --run %s --codes %s --out %s", tg_tmp(run), tg_tmp("c.bin"), tg_tmp("d.idx")));
    tg_images x;
    tg_err e;
    cr_assert_eq(tg_idx_images_load(tg_tmp("d.idx"), &x, &e), 0, "%s", e.msg);
    cr_expect(x.n == n && x.rows == 28 && x.cols == 28, "d.idx: %lld images", (long long)x.n);
    for (int64_t i = 0; i < n && i < x.n; i++) {
        char what[64];
        snprintf(what, sizeof what, "d.idx image %lld", (long long)i);
        expect_tile(x.pixels + i * D, img + i * D, what);
    }
    tg_images_free(&x);
    vae_ok(vae("decode --run %s --codes %s --out %s", tg_tmp(run), tg_tmp("c.bin"), tg_tmp("d.png")));
    uint8_t *t = tiles("d.png", n, 8);
    cr_expect(!memcmp(t, img, (size_t)(n * D)), "d.png: not the images decoded from the codes");
    free(t), free(img), free(got), free(want);
    unload(&r);
}

Test(vae_pictures, encode_decode_round_trip) {
    tg_cli_train("data", "q", VQ);
    round_trip("q", "data", 8, 3);   /* 32 images x 49 codes x 3 bits = 588 bytes */
    /* 16 codes: 4 bits; 5 codes: 3 bits, rounded up; 3 test images: 441 bits, so a padded last byte. */
    tg_cli_train("data", "q16", "--model vq-vae --codes 16 --code-dim 4 --epochs 1 --batch 16 --threads 1");
    round_trip("q16", "data", 16, 4);
    tg_cli_train("data", "q5", "--model vq-vae --codes 5 --code-dim 4 --epochs 1 --batch 16 --threads 1");
    tg_cli_write_data(tg_tmp("data3"), 64, 3);
    round_trip("q5", "data3", 5, 3);
}

/* Copies <tmp>/c.bin to <tmp>/name with edit applied to its bytes. */
static void damaged(const char *name, void (*edit)(uint8_t *f, size_t *n)) {
    size_t n;
    uint8_t *f = tg_slurp(tg_tmp("c.bin"), &n);
    f = realloc(f, n + 1);
    edit(f, &n);
    tg_spit(tg_tmp(name), f, n);
    free(f);
}
static void cut_last(uint8_t *f, size_t *n) { (void)f, --*n; }
static void add_byte(uint8_t *f, size_t *n) { f[(*n)++] = 0; }
static void cut_header(uint8_t *f, size_t *n) { (void)f, *n = 19; }
static void bad_magic(uint8_t *f, size_t *n) { (void)n, f[3] = 'X'; }
static void version_2(uint8_t *f, size_t *n) { (void)n, f[4] = 2; }
static void no_images(uint8_t *f, size_t *n) { (void)n, memset(f + 16, 0, 4); }
static void code_7(uint8_t *f, size_t *n) { (void)n, f[20] |= 7; }          /* 7 >= K = 5 */
static void padding(uint8_t *f, size_t *n) { f[*n - 1] |= 0x80; }            /* 441 bits: 7 unused */
static void grid_147(uint8_t *f, size_t *n) { (void)n, f[12] = 147, f[16] = 1; } /* 1 x 147 codes: the same bits */

Test(vae_pictures, codes_errors) {
    tg_cli_train("data", "q5", "--model vq-vae --codes 5 --code-dim 4 --epochs 1 --batch 16 --threads 1");
    tg_cli_train("data", "q8", VQ);
    tg_cli_train("data", "v", "--latent 2 " TINY);
    tg_cli_write_data(tg_tmp("data3"), 64, 3);
    vae_ok(vae("encode --run %s --data %s --out %s", tg_tmp("q5"), tg_tmp("data3"), tg_tmp("c.bin")));
    char out[512];
    snprintf(out, sizeof out, "%s", tg_tmp("out.png"));
    /* Damaged files: exit 1 naming the file, nothing written. */
    struct {
        const char *name;
        void (*edit)(uint8_t *, size_t *);
        const char *needle;
    } bad[] = {{"short.bin", cut_last, "truncated"}, {"long.bin", add_byte, "after"},
               {"header.bin", cut_header, "truncated"}, {"magic.bin", bad_magic, "TGVQ"},
               {"v2.bin", version_2, "version"}, {"zero.bin", no_images, "out of range"},
               {"code.bin", code_7, "not below"}, {"pad.bin", padding, "unused bits"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        damaged(bad[i].name, bad[i].edit);
        int rc = vae("decode --run %s --codes %s --out %s", tg_tmp("q5"), tg_tmp(bad[i].name), out);
        tg_cli_expect_error(last_cmd, rc, 1, (const char *const[]){tg_tmp(bad[i].name), bad[i].needle, NULL});
    }
    /* The file itself is fine: a run of another codebook size refuses it. */
    vae_ok(vae("decode --run %s --codes %s --out %s", tg_tmp("q5"), tg_tmp("c.bin"), tg_tmp("fine.png")));
    int rc = vae("decode --run %s --codes %s --out %s", tg_tmp("q8"), tg_tmp("c.bin"), out);
    tg_cli_expect_error(last_cmd, rc, 1, (const char *const[]){tg_tmp("c.bin"), "another run", "K = 5", "K = 8", NULL});
    damaged("g147.bin", grid_147);   /* a well-formed file of another grid */
    rc = vae("decode --run %s --codes %s --out %s", tg_tmp("q5"), tg_tmp("g147.bin"), out);
    tg_cli_expect_error(last_cmd, rc, 1, (const char *const[]){tg_tmp("g147.bin"), "another run", "G = 147", "G = 49", NULL});
    rc = vae("decode --run %s --codes %s --out %s", tg_tmp("q5"), tg_tmp("missing.bin"), out);
    tg_cli_expect_error(last_cmd, rc, 1, (const char *const[]){tg_tmp("missing.bin"), NULL});
    /* A Gaussian model has no codes: refused naming the model. */
    rc = vae("encode --run %s --out %s", tg_tmp("v"), tg_tmp("g.bin"));
    tg_cli_expect_error(last_cmd, rc, 2, (const char *const[]){"--run", "vae", "Gaussian", NULL});
    rc = vae("decode --run %s --codes %s --out %s", tg_tmp("v"), tg_tmp("c.bin"), out);
    tg_cli_expect_error(last_cmd, rc, 2, (const char *const[]){"--run", "vae", "Gaussian", NULL});
    /* Flag errors: exit 2 naming the flag. */
    struct {
        const char *args, *needle;
    } flags[] = {{"decode --run RUN --out OUT", "--codes"},
                 {"decode --run RUN --codes CODES", "--out"},
                 {"decode --run RUN --codes CODES --out OUT.txt", "--out"},
                 {"decode --codes CODES --out OUT", "--run"},
                 {"decode --run RUN --codes CODES --out OUT --data DIR", "--data"},
                 {"decode --run RUN --codes CODES --out OUT --threads 0", "--threads"},
                 {"encode --run RUN", "--out"},
                 {"encode --out OUT.bin", "--run"},
                 {"encode --run RUN --out OUT.bin --codes CODES", "--codes"},
                 {"encode --run RUN --out", "--out"}};
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        char args[2048] = "", *p = args;
        for (const char *s = flags[i].args; *s;) {   /* RUN, CODES, OUT, DIR -> paths */
            const char *rep = !strncmp(s, "RUN", 3) ? tg_tmp("q5") : !strncmp(s, "CODES", 5) ? tg_tmp("c.bin")
                              : !strncmp(s, "OUT", 3) ? tg_tmp("out") : !strncmp(s, "DIR", 3) ? tg_tmp("data")
                                                                                              : NULL;
            if (rep) {
                p += sprintf(p, "%s", rep);
                s += !strncmp(s, "CODES", 5) ? 5 : 3;
            } else {
                *p++ = *s++;
            }
        }
        *p = 0;
        rc = vae("%s", args);
        tg_cli_expect_error(last_cmd, rc, 2, (const char *const[]){flags[i].needle, NULL});
    }
    cr_expect(access(out, F_OK) != 0 && access(tg_tmp("out"), F_OK) != 0 && access(tg_tmp("out.txt"), F_OK) != 0 &&
                  access(tg_tmp("g.bin"), F_OK) != 0, "a refused command wrote its output");
    /* A codes file that cannot be written: exit 1, nothing left behind. */
    rc = vae("encode --run %s --out %s", tg_tmp("q8"), tg_tmp("nodir/c.bin"));
    tg_cli_expect_error(last_cmd, rc, 1, (const char *const[]){tg_tmp("nodir/c.bin"), NULL});
    /* Writes that fail part-way (a file size limit, as on a full disk): exit 1, and
     * neither the file nor a temporary one is left. */
    vae_ok(vae("encode --run %s --out %s", tg_tmp("q8"), tg_tmp("c8.bin")));   /* 608 bytes */
    char args[2048];
    snprintf(args, sizeof args, "decode --run %s --codes %s --out %s", tg_tmp("q8"), tg_tmp("c8.bin"), tg_tmp("big.idx"));
    rc = tg_cli_run_limited(NULL, args, 0, 4096, NULL);   /* 32 images: 25104 bytes */
    tg_cli_expect_error(args, rc, 1, (const char *const[]){tg_tmp("big.idx"), NULL});
    snprintf(args, sizeof args, "encode --run %s --out %s", tg_tmp("q8"), tg_tmp("small.bin"));
    rc = tg_cli_run_limited(NULL, args, 0, 300, NULL);
    tg_cli_expect_error(args, rc, 1, (const char *const[]){tg_tmp("small.bin"), NULL});
    DIR *d = opendir(tg_tmpdir());
    for (struct dirent *de; (de = readdir(d));)
        cr_expect(!strstr(de->d_name, "big.idx") && !strstr(de->d_name, "small.bin"), "%s left behind", de->d_name);
    closedir(d);
    /* --help. */
    vae_ok(vae("encode --help"));
    char *help = tg_cli_text("stdout");
    cr_expect(strstr(help, "--codes") && strstr(help, "decode"), "%s", help);
    free(help);
    vae_ok(vae("--help"));
    help = tg_cli_text("stdout");
    cr_expect(strstr(help, "encode") && strstr(help, "decode"), "vae --help: %s", help);
    free(help);
}
