/*
 * test_vae_learning.c — does `vae train` learn? Each model of the family
 * (vae, beta-vae, annealed-vae, cvae with the standard and the learned prior)
 * is trained by the real build/vae on the gray synthetic images of vae_cli.h
 * (512 train / 128 test, every level 0..255), once per binarisation mode
 * (none, static, dynamic), and the Gaussian likelihood once. From metrics.csv:
 *
 *   - the rows hold together (tg_cli_check_metrics): test_loss = recon + kl,
 *     and train_loss, per image, within 15% of the test objective at every
 *     epoch (the training figure averages over an epoch in which the loss
 *     falls fast: up to 9.4% apart in epoch 2) and within 5% at the last
 *     (at most 2.8% apart);
 *   - the test loss falls: no epoch more than 1% above the one before (the
 *     one-z-per-image estimate wobbles by up to 0.45%), and the last below
 *     the first by a tenth of the room defined below;
 *   - it ends below
 *       (i)  the untrained model's: the parameters the trainer starts from
 *            (tg_vae_model_new from the run's seed, as examples/vae/train.c builds
 *            them) in a run directory of their own, through `vae eval`;
 *       (ii) a per-pixel-mean baseline computed here by hand: each test
 *            image as the model sees it (p / 255, or binarised by the
 *            documented rule, tg_hand_binarize) scored by the training set's
 *            per-pixel mean (as the model sees the training set: binarised
 *            for static, gray otherwise, the expectation of dynamic draws):
 *            BCE for Bernoulli (log clamped at -100 as the library's), the
 *            unit-variance Gaussian NLL for Gaussian;
 *     each by 30% of the room between the baseline and the floor below (on
 *     ten seeds every run ended at least 61% of the room below the baseline);
 *   - it stays above the floor no model can go below: for gray Bernoulli
 *     images the entropy sum_d H(x_d) of each image (BCE(x, q) = H(x) +
 *     KL(x || q) and KL >= 0); for binarised ones the same entropy of the gray
 *     levels, which bounds the expected loss on images drawn from them, less
 *     5 standard deviations of the draws (sum_d x(1 - x) logit(x)^2 per
 *     image); for Gaussian 1/2 D log 2 pi. A model scoring below it was tested
 *     on images other than the documented draws;
 *   - the last test_loss is within 1% of `vae eval --iw 1` on the same run
 *     (one z draw per image each, from different generators: at most 0.28%
 *     apart on ten seeds);
 *   - reconstruction_<e>.png and sample_<e>.png hold what the network,
 *     computed by hand from model.safetensors, draws (tg_hand_check_images).
 *
 * Each run is small (hidden 64, latent 4, batch 16, lr 3e-3, 8 epochs of 32
 * steps, about 0.15 s); the file costs about 3 s of CPU.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data.h"
#include "examples/vae/evaluate.h"
#include "nn/checkpoint.h"

#include "tests/hand_vae.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define LOG_2PI 1.8378770664093454836
#define NTRAIN 512
#define NTEST 128
#define EPOCHS 8
#define RUN "--epochs 8 --batch 16 --hidden 64 --latent 4 --lr 3e-3 --threads 1"

static void setup(void) {
    tg_tmpdir_setup();
    tg_cli_write_data(tg_tmp("data"), NTRAIN, NTEST);
}

TestSuite(vae_learning, .init = setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* ---------------------------------------------------------------- by hand */

static double clamped_log(double v) { return v > 0 ? fmax(log(v), -100) : -100; }

static double bce(double x, double q) { return -(x * clamped_log(q) + (1 - x) * clamped_log(1 - q)); }

/* The baseline, the floor and the floor's slack, per test image. */
typedef struct {
    double baseline, floor, slack;
} bounds;

static bounds by_hand(tg_binarize mode, bool gaussian) {
    tg_dataset ds;
    tg_err e;
    cr_assert_eq(tg_dataset_load(tg_tmp("data"), &ds, &e), 0, "%s", e.msg);
    const int64_t D = 28 * 28, ntr = ds.train_x.n, nte = ds.test_x.n;
    uint8_t *train = malloc((size_t)(ntr * D)), *test = malloc((size_t)(nte * D));
    tg_hand_binarize(mode, 1, &ds.train_x, &ds.test_x, train, test);
    double *mean = calloc((size_t)D, sizeof(double));
    for (int64_t i = 0; i < ntr * D; i++) mean[i % D] += train[i] / 255.0 / (double)ntr;
    bounds b = {0};
    double var = 0;
    for (int64_t i = 0; i < nte * D; i++) {
        double x = test[i] / 255.0, g = ds.test_x.pixels[i] / 255.0, m = mean[i % D];
        if (gaussian) {
            b.baseline += 0.5 * (LOG_2PI + (x - m) * (x - m));
            b.floor += 0.5 * LOG_2PI;
            continue;
        }
        b.baseline += bce(x, m);
        if (g > 0 && g < 1) {
            b.floor += bce(g, g);
            if (mode != TG_BINARIZE_NONE) var += g * (1 - g) * pow(log(g / (1 - g)), 2);
        }
    }
    b.baseline /= (double)nte, b.floor /= (double)nte;
    b.slack = 5 * sqrt(var) / (double)nte;
    cr_assert(isfinite(b.baseline), "baseline %g", b.baseline);
    free(mean), free(train), free(test);
    tg_dataset_free(&ds);
    return b;
}

/* `vae eval`'s elbo of the parameters the trainer of <tmp>/<run> started
 * from, written with the run's config.json into <tmp>/<run>_init. */
static double untrained_elbo(const char *run) {
    char dir[512], init[512], name[256], path[1024];
    snprintf(name, sizeof name, "%s_init", run);
    snprintf(dir, sizeof dir, "%s", tg_tmp(run));
    snprintf(init, sizeof init, "%s", tg_tmp(name));
    cr_assert_eq(mkdir(init, 0777), 0, "mkdir %s", init);
    size_t n;
    snprintf(path, sizeof path, "%s/config.json", dir);
    uint8_t *cfg = tg_slurp(path, &n);
    snprintf(path, sizeof path, "%s/config.json", init);
    tg_spit(path, cfg, n);
    free(cfg);
    tg_run_info ri;
    tg_err e;
    cr_assert_eq(tg_run_info_load(dir, &ri, &e), 0, "%s", e.msg);
    tg_model_config c = tg_train_model_config(&ri.o, ri.rows, ri.cols);
    tg_rng r = tg_rng_seed(ri.o.seed);
    tg_params *ps = tg_params_new(TG_F32);
    tg_model m = tg_model_new(tg_model_find(ri.o.model), ps, &c, &r);
    tg_model_free(&m);
    snprintf(path, sizeof path, "%s/model.safetensors", init);
    cr_assert_eq(tg_params_save(ps, path, 0, NULL, NULL, &e), 0, "%s", e.msg);
    tg_params_free(ps);
    return tg_cli_eval_elbo(name);
}

/* ---------------------------------------------------------------- runs */

static const char *const modes[] = {"none", "static", "dynamic"};   /* tg_binarize's order */

/* Trains <name> with args and every check listed at the top. */
static void learn(const char *name, const char *args, tg_binarize mode, bool gaussian) {
    char a[1024];
    snprintf(a, sizeof a, "%s --binarize %s %s", args, modes[mode], RUN);
    tg_cli_train("data", name, a);
    double rows[EPOCHS + 1][TG_M_COLS];
    tg_cli_check_metrics(name, EPOCHS, 0.15, rows);
    const double *end = rows[EPOCHS - 1];
    double obj = end[TG_M_RECON] + end[TG_M_KL_WEIGHT] * end[TG_M_KL];
    cr_expect_leq(fabs(end[TG_M_TRAIN] - obj), 0.05 * obj, "%s: last epoch: train_loss %.4f, test objective %.4f",
                  name, end[TG_M_TRAIN], obj);

    double first = rows[0][TG_M_TEST], last = end[TG_M_TEST];
    for (int i = 1; i < EPOCHS; i++)
        cr_expect_leq(rows[i][TG_M_TEST], rows[i - 1][TG_M_TEST] * 1.01, "%s: test loss rose from %.4f at epoch %d "
                      "to %.4f", name, rows[i - 1][TG_M_TEST], i, rows[i][TG_M_TEST]);
    bounds b = by_hand(mode, gaussian);
    double init = untrained_elbo(name), room = b.baseline - b.floor;
    cr_expect_lt(last, first - 0.1 * room, "%s: test loss %.4f after epoch 1, %.4f at the end", name, first, last);
    cr_expect_lt(last, init - 0.3 * room, "%s: test loss %.4f, untrained %.4f", name, last, init);
    cr_expect_lt(last, b.baseline - 0.3 * room, "%s: test loss %.4f, per-pixel-mean baseline %.4f (floor %.4f)",
                 name, last, b.baseline, b.floor);
    cr_expect_geq(last, b.floor - b.slack - 1e-6 * b.floor, "%s: test loss %.4f below the floor %.4f (slack %.4f)",
                  name, last, b.floor, b.slack);
    double elbo = tg_cli_eval_elbo(name);
    cr_expect_leq(fabs(elbo - last), 0.01 * last, "%s: vae eval's elbo %.4f, metrics.csv's test_loss %.4f", name, elbo,
                  last);
    tg_hand_check_images(tg_tmp(name), EPOCHS);
}

static void learn_modes(const char *name, const char *args) {
    for (int m = 0; m < 3; m++) {
        char n[128];
        snprintf(n, sizeof n, "%s_%s", name, modes[m]);
        learn(n, args, (tg_binarize)m, false);
    }
}

Test(vae_learning, vae) { learn_modes("vae", "--model vae"); }
Test(vae_learning, beta_vae) { learn_modes("beta", "--model beta-vae --beta 2"); }
Test(vae_learning, annealed_vae) { learn_modes("annealed", "--model annealed-vae --anneal-epochs 4"); }
Test(vae_learning, cvae) { learn_modes("cvae", "--model cvae"); }
Test(vae_learning, cvae_learned_prior) { learn_modes("learned", "--model cvae --prior learned"); }
Test(vae_learning, gaussian) { learn("gaussian", "--model vae --likelihood gaussian", TG_BINARIZE_NONE, true); }
