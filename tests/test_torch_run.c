/*
 * test_torch_run.c — a checkpoint written by PyTorch, evaluated by the real
 * build/vae (no PyTorch needed here).
 *
 * tests/fixtures/torch_run/ was written by `scripts/torch_check.py fixture`:
 * bench/torch_vae.py's module with 20 inputs, hidden 16, latent 4, trained by
 * PyTorch on tests/fixtures/data/mini (37 train, 11 test gray images of 5x4);
 * model.safetensors holds its float32 weights under PyTorch's names,
 * config.json is as `vae train` writes it, and reference.json holds PyTorch's
 * float64 figures over the 11 test images. `vae eval --iw 100` must match:
 *
 *   kl, kl_per_dim  the same number on both sides up to float32 rounding:
 *                   relative 1e-4 (each dimension relative to the total KL).
 *   recon           vae eval decodes one z per image, so its recon is the mean
 *                   of 11 random draws around PyTorch's expectation (20,000
 *                   draws per image). Its standard error, recon_se =
 *                   sqrt(mean_i Var(recon | x_i) / 11), also comes from
 *                   PyTorch's draws; held to 4 recon_se, a band that a correct
 *                   evaluator leaves for about one seed in 15,000.
 *   nll             likewise: the expectation of the 100-sample estimate over
 *                   2,000 repetitions, and nll_se; held to 4 nll_se.
 *
 * Tests run from the repository root, as `make test` does.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/json.h"

#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define RUN "tests/fixtures/torch_run"
#define DATA "tests/fixtures/data/mini"
#define LATENT 4

static tg_json *parse(const char *text, size_t n, const char *name) {
    tg_err e;
    tg_json *doc = tg_json_parse(text, n, name, &e);
    cr_assert_not_null(doc, "%s", e.msg);
    cr_assert_eq(doc->type, TG_JSON_OBJECT, "%s: not an object", name);
    return doc;
}

static double num(const tg_json *v, const char *what) {
    double d;
    cr_assert_eq(tg_json_as_double(v, &d), 0, "%s: missing or not a number", what);
    cr_assert(isfinite(d), "%s is not finite", what);
    return d;
}

TestSuite(torch_run, .init = tg_tmpdir_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

Test(torch_run, vae_eval_matches_pytorch) {
    size_t n;
    uint8_t *rtext = tg_slurp(RUN "/reference.json", &n);
    cr_assert_not_null(rtext, "missing " RUN "/reference.json");
    tg_json *ref = parse((const char *)rtext, n, "reference.json");

    int rc = tg_cli_run("eval --run " RUN " --data " DATA " --iw 100 --seed 1 --threads 1");
    cr_assert_eq(rc, 0, "vae eval on the PyTorch-written run: exit %d: %s", rc, tg_cli_text("stderr"));
    char *otext = tg_cli_text("stdout");
    tg_json *out = parse(otext, strlen(otext), "vae eval's output");

    cr_expect_eq(num(tg_json_get(out, "images"), "images"), num(tg_json_get(ref, "images"), "images"));
    cr_expect_eq(num(tg_json_get(out, "iw_samples"), "iw_samples"), 100);
    double kl = num(tg_json_get(ref, "kl"), "reference kl"), ours = num(tg_json_get(out, "kl"), "kl");
    cr_expect(kl > 0.1, "reference kl %g: the fixture's encoder should not be trivial", kl);
    cr_expect(fabs(ours - kl) <= 1e-4 * kl, "kl %.9g, PyTorch %.9g", ours, kl);
    const tg_json *rd = tg_json_get(ref, "kl_per_dim"), *od = tg_json_get(out, "kl_per_dim");
    cr_assert(tg_json_len(rd) == LATENT && tg_json_len(od) == LATENT, "kl_per_dim: %s", otext);
    for (size_t l = 0; l < LATENT; l++) {
        double a = num(tg_json_at(od, l), "kl_per_dim"), b = num(tg_json_at(rd, l), "reference kl_per_dim");
        cr_expect(fabs(a - b) <= 1e-4 * kl, "kl_per_dim[%zu] %.9g, PyTorch %.9g", l, a, b);
    }
    static const char *const noisy[][2] = {{"recon", "recon_se"}, {"nll", "nll_se"}};
    for (size_t k = 0; k < 2; k++) {
        double a = num(tg_json_get(out, noisy[k][0]), noisy[k][0]), b = num(tg_json_get(ref, noisy[k][0]), "reference");
        double se = num(tg_json_get(ref, noisy[k][1]), noisy[k][1]);
        cr_expect(se > 0 && fabs(a - b) <= 4 * se, "%s %.9g, PyTorch's expectation %.9g: %.2f standard errors of %.3g",
                  noisy[k][0], a, b, fabs(a - b) / se, se);
    }
    tg_json_free(out);
    tg_json_free(ref);
    free(otext);
    free(rtext);
}
