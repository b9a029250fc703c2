/*
 * test_vae_cli.c — the `vae` program (examples/vae/main.c, examples/vae/train.c) run as
 * a user runs it: the real binary build/vae on a tiny synthetic IDX dataset
 * (64 train / 32 test images of 28x28, labels 0..9) in a temporary directory.
 *
 * The binary is built on first use with `make -s build/vae` (under a file
 * lock, as Criterion runs tests in parallel); the test is skipped if that is
 * impossible. Tests run from the repository root, as `make test` does.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "examples/vae/train.h"
#include "io/safetensors.h"
#include "nn/checkpoint.h"

#include "tests/hand_vae.h"
#include "tests/png_read.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

/* ================================================================ helpers */

#define SMALL "--epochs 2 --batch 16 --hidden 32 --latent 4 --threads 1"





/* Runs `build/vae train --data <tmp>/data --out <tmp>/<out> ARGS`. */
static int train(const char *out, const char *args) {
    char a[2048];
    snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp("data"), tg_tmp(out), args);
    return tg_cli_run(a);
}


static bool file_exists(const char *path) { return access(path, F_OK) == 0; }

/* A full run's outputs: files; metrics whose rows hold together
 * (tg_cli_check_metrics; after 2 short epochs the training loss is within 1%
 * of the test objective, allowed 5%); epoch 1's images laid out as grids with
 * zero padding, epoch 2's equal to the network computed by hand from
 * model.safetensors (tg_hand_check_images: the first 8 test images as the
 * model saw them above sigmoid(decoder(mu)), and the prior samples); and a
 * model that loads into the same configuration. */
static void check_run(const char *out, int64_t classes, tg_prior prior) {
    const char *files[] = {"model.safetensors", "optimizer.safetensors", "config.json", "metrics.csv",
                           "reconstruction_1.png", "reconstruction_2.png", "sample_1.png", "sample_2.png", "curves.png"};
    char p[512];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(p, sizeof p, "%s/%s", tg_tmp(out), files[i]);
        cr_expect(file_exists(p), "missing %s", p);
    }
    double rows[3][TG_M_COLS];
    tg_cli_check_metrics(out, 2, 0.05, rows);
    static uint8_t tiles[80 * 28 * 28];
    snprintf(p, sizeof p, "%s/reconstruction_1.png", tg_tmp(out));
    tg_png_img g = tg_png_read(p);
    tg_png_grid_tiles(&g, 16, 28, 28, 8, 2, tiles);
    tg_png_free(&g);
    snprintf(p, sizeof p, "%s/sample_1.png", tg_tmp(out));
    g = tg_png_read(p);
    tg_png_grid_tiles(&g, classes ? 80 : 64, 28, 28, 8, 2, tiles);
    tg_png_free(&g);
    tg_hand_check_images(tg_tmp(out), 2);

    int64_t hidden[] = {32};
    tg_vae_config c = tg_vae_config_new(784, 1, hidden, 4);
    c.classes = classes, c.prior = prior;
    tg_rng r = tg_rng_seed(99);
    tg_params *ps = tg_params_new(TG_F32);
    tg_vae_model_new(ps, &c, &r);
    tg_err e;
    snprintf(p, sizeof p, "%s/model.safetensors", tg_tmp(out));
    cr_expect_eq(tg_params_load(ps, p, &e), 0, "%s", e.msg);
    cr_expect_not_null(tg_params_find(ps, "fc1.weight"), "reference names for one hidden layer");

    tg_safetensors st;
    snprintf(p, sizeof p, "%s/optimizer.safetensors", tg_tmp(out));
    cr_assert_eq(tg_safetensors_read(p, &st, &e), 0, "%s", e.msg);
    const tg_st_tensor *m = tg_safetensors_find(&st, "adam.m"), *v = tg_safetensors_find(&st, "adam.v");
    cr_assert(m && v);
    cr_expect_eq(m->tensor.numel, ps->n);
    cr_expect_eq(v->tensor.numel, ps->n);
    const char *step = tg_safetensors_meta(&st, "adam.step");
    cr_assert_not_null(step);
    cr_expect_str_eq(step, "8");   /* 2 epochs of 64 / 16 steps */
    cr_expect_not_null(tg_safetensors_meta(&st, "rng.noise"));
    tg_safetensors_free(&st);
    tg_params_free(ps);
}


TestSuite(vae_cli, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* ================================================================ runs */

Test(vae_cli, vae) {
    cr_assert_eq(train("out", "--model vae " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("out", 0, TG_PRIOR_STANDARD);
    char *s = tg_cli_text("stdout");
    cr_expect(strstr(s, "images/s"), "per-epoch line: %s", s);
    free(s);
    s = tg_cli_text("out/config.json");
    cr_expect(strstr(s, "\"model\":\"vae\"") && strstr(s, "\"latent\":4") && strstr(s, "\"hidden\":[32]"), "%s", s);
    free(s);
}

Test(vae_cli, beta_vae) {
    cr_assert_eq(train("out", "--model beta-vae --beta 4 " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("out", 0, TG_PRIOR_STANDARD);
    double rows[4][TG_M_COLS];
    tg_cli_metrics("out", rows, 4);
    cr_expect_eq(rows[1][5], 4.0, "kl_weight is beta: %g", rows[1][5]);
}

Test(vae_cli, train_without_model_trains_the_vae) {
    cr_assert_eq(train("out", SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("out", 0, TG_PRIOR_STANDARD);
    char *cfg = tg_cli_text("out/config.json");
    cr_expect(strstr(cfg, "\"model\":\"vae\"") || strstr(cfg, "\"model\": \"vae\""), "%s", cfg);
    free(cfg);
}

Test(vae_cli, annealed_vae_linear_by_epoch) {
    cr_assert_eq(train("out", "--model annealed-vae " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("out", 0, TG_PRIOR_STANDARD);
    double rows[4][TG_M_COLS];
    tg_cli_metrics("out", rows, 4);
    cr_expect_eq(rows[0][5], 0.1, "epoch 1: %g", rows[0][5]);     /* min(1, 1 / 10): epochs count from 1 */
    cr_expect_eq(rows[1][5], 0.2, "epoch 2: %g", rows[1][5]);     /* min(1, 2 / 10) */
    cr_assert_eq(train("out2", "--model annealed-vae --anneal-epochs 2 " SMALL), 0);
    tg_cli_metrics("out2", rows, 4);
    cr_expect_eq(rows[0][5], 0.5);
    cr_expect_eq(rows[1][5], 1.0);
}

Test(vae_cli, annealed_vae_by_step_and_cyclical) {
    double rows[4][TG_M_COLS];
    /* 4 steps per epoch: the last step of epoch 1 is step 3 -> 3/8. */
    cr_assert_eq(train("out", "--model annealed-vae --anneal-steps 8 " SMALL), 0, "%s", tg_cli_text("stderr"));
    tg_cli_metrics("out", rows, 4);
    cr_expect_eq(rows[0][5], 0.375, "%g", rows[0][5]);
    cr_expect_eq(rows[1][5], 0.875, "%g", rows[1][5]);
    /* 8 steps, 2 cycles of 4, ratio 0.5: step 3 is at 3/4 of its cycle -> 1. */
    cr_assert_eq(train("out2", "--model annealed-vae --anneal cyclical --cycles 2 --ratio 0.5 " SMALL), 0);
    tg_cli_metrics("out2", rows, 4);
    cr_expect_eq(rows[0][5], 1.0);
    cr_expect_eq(rows[1][5], 1.0);
    cr_assert_eq(train("out3", "--model annealed-vae --anneal cyclical --cycles 2 --ratio 1 " SMALL), 0);
    tg_cli_metrics("out3", rows, 4);
    cr_expect_eq(rows[0][5], 0.75, "%g", rows[0][5]);
}

Test(vae_cli, cvae) {
    cr_assert_eq(train("out", "--model cvae " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("out", 10, TG_PRIOR_STANDARD);
    cr_assert_eq(train("learned", "--model cvae --prior learned " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("learned", 10, TG_PRIOR_LEARNED);
}

Test(vae_cli, likelihood_and_binarize) {
    cr_assert_eq(train("g", "--model vae --likelihood gaussian " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("g", 0, TG_PRIOR_STANDARD);
    cr_assert_eq(train("s", "--model vae --binarize static " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("s", 0, TG_PRIOR_STANDARD);
    cr_assert_eq(train("d", "--model vae --binarize dynamic " SMALL), 0, "%s", tg_cli_text("stderr"));
    check_run("d", 0, TG_PRIOR_STANDARD);
    char a[256], b[256];
    snprintf(a, sizeof a, "%s/model.safetensors", tg_tmp("s"));
    snprintf(b, sizeof b, "%s/model.safetensors", tg_tmp("d"));
    cr_expect(!tg_cli_same_file(a, b), "static and dynamic binarisation train differently");
}

Test(vae_cli, deterministic_for_seed_and_threads) {
    cr_assert_eq(train("a", "--model cvae --seed 5 " SMALL), 0, "%s", tg_cli_text("stderr"));
    cr_assert_eq(train("b", "--model cvae --seed 5 " SMALL), 0);
    cr_assert_eq(train("t2", "--model cvae --seed 5 --epochs 2 --batch 16 --hidden 32 --latent 4 --threads 2"), 0);
    cr_assert_eq(train("c", "--model cvae --seed 6 " SMALL), 0);
    char a[256], b[256], t2[256], c[256];
    snprintf(a, sizeof a, "%s/model.safetensors", tg_tmp("a"));
    snprintf(b, sizeof b, "%s/model.safetensors", tg_tmp("b"));
    snprintf(t2, sizeof t2, "%s/model.safetensors", tg_tmp("t2"));
    snprintf(c, sizeof c, "%s/model.safetensors", tg_tmp("c"));
    cr_expect(tg_cli_same_file(a, b), "same seed, different model.safetensors");
    cr_expect(tg_cli_same_file(a, t2), "--threads 1 and 2 differ");
    cr_expect(!tg_cli_same_file(a, c), "seeds 5 and 6 give the same model");
    snprintf(a, sizeof a, "%s/sample_2.png", tg_tmp("a"));
    snprintf(b, sizeof b, "%s/sample_2.png", tg_tmp("t2"));
    cr_expect(tg_cli_same_file(a, b), "samples differ with the thread count");
}

/* ================================================================ errors */

Test(vae_cli, help) {
    cr_assert_eq(tg_cli_run("--help"), 0);
    char *s = tg_cli_text("stdout");
    cr_expect(strstr(s, "train"), "%s", s);
    cr_expect(strstr(s, "eval") && strstr(s, "sample"), "every command is listed: %s", s);
    free(s);
    cr_assert_eq(tg_cli_run("train --help"), 0);
    s = tg_cli_text("stdout");
    const char *want[] = {"--model", "--data", "--epochs 10", "--batch 128", "--hidden 400", "--latent 20",
                          "--lr 1e-3", "--beta 1", "--anneal-epochs", "--anneal-steps", "--cycles", "--ratio",
                          "--prior", "--likelihood", "--binarize", "--seed 1", "--threads", "--out"};
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) cr_expect(strstr(s, want[i]), "help lacks %s", want[i]);
    free(s);
}

Test(vae_cli, unknown_commands) {
    const char *cmds[] = {"frobnicate", "", "--frob"};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        cr_expect_eq(tg_cli_run(cmds[i]), 2, "vae %s", cmds[i]);
    }
    char *s = tg_cli_text("stderr");
    cr_expect(strstr(s, "usage"), "%s", s);
    free(s);
}

Test(vae_cli, flag_errors) {
    static const struct {
        const char *args, *flag;
    } cases[] = {
        {"--model vae --frob 1", "--frob"},
        {"--model vae --epochs", "--epochs"},
        {"--model", "--model"},
        {"--model frob", "--model"},
        {"--model vae --epochs ten", "--epochs"},
        {"--model vae --epochs 0", "--epochs"},
        {"--model vae --epochs 2x", "--epochs"},
        {"--model vae --batch 0", "--batch"},
        {"--model vae --latent 0", "--latent"},
        {"--model vae --lr nan", "--lr"},
        {"--model vae --lr inf", "--lr"},
        {"--model vae --lr -1e-3", "--lr"},
        {"--model vae --lr 0", "--lr"},
        {"--model vae --lr abc", "--lr"},
        {"--model vae --beta -1", "--beta"},
        {"--model vae --threads 0", "--threads"},
        {"--model annealed-vae --cycles 0", "--cycles"},
        {"--model annealed-vae --ratio 0", "--ratio"},
        {"--model annealed-vae --ratio 1.5", "--ratio"},
        {"--model annealed-vae --ratio -0.5", "--ratio"},
        {"--model annealed-vae --anneal-epochs 0", "--anneal-epochs"},
        {"--model annealed-vae --anneal-steps -3", "--anneal-steps"},
        {"--model gan", "--model"},
        {"--model annealed-vae --anneal cosine", "--anneal"},
        {"--model cvae --prior fancy", "--prior"},
        {"--model vae --prior learned", "--prior"},
        {"--model vae --likelihood poisson", "--likelihood"},
        {"--model vae --binarize always", "--binarize"},
        {"--model vae --hidden 32,,16", "--hidden"},
        {"--model vae --hidden 0", "--hidden"},
        {"--model vae --hidden -4", "--hidden"},
        {"--model vae --hidden 1,2,3,4,5,6,7,8,9", "--hidden"},
        {"--model vae --hidden abc", "--hidden"},
        {"--model vae --seed -1", "--seed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char a[512];
        snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp("data"), tg_tmp("never"), cases[i].args);
        int rc = tg_cli_run(a);
        char *err = tg_cli_text("stderr");
        cr_expect_eq(rc, 2, "vae train %s: exit %d (%s)", cases[i].args, rc, err);
        cr_expect(strstr(err, cases[i].flag), "vae train %s: message does not name %s: %s", cases[i].args,
                  cases[i].flag, err);
        cr_expect(strchr(err, '\n') == strrchr(err, '\n'), "one line expected: %s", err);
        free(err);
    }
    cr_expect(!file_exists(tg_tmp("never")), "a flag error created the output directory");
}

Test(vae_cli, data_errors) {
    char a[512];
    snprintf(a, sizeof a, "train --model vae --data %s --out %s", tg_tmp("nodata"), tg_tmp("out"));
    cr_expect_eq(tg_cli_run(a), 1);
    char *err = tg_cli_text("stderr");
    cr_expect(strstr(err, "nodata"), "%s", err);
    free(err);
    /* --out whose parent is missing. */
    cr_expect_eq(train("no/such/dir", "--model vae " SMALL), 1);
    err = tg_cli_text("stderr");
    cr_expect(strstr(err, "--out"), "%s", err);
    free(err);
    /* A truncated label file: the loader's message, exit 1. */
    tg_spit(tg_tmp("data/t10k-labels-idx1-ubyte"), "\0\0\x08\x01\0\0\0\x20", 8);
    cr_expect_eq(train("out", "--model vae " SMALL), 1);
    err = tg_cli_text("stderr");
    cr_expect(strstr(err, "t10k-labels"), "%s", err);
    free(err);
}

Test(vae_cli, non_finite_loss_stops) {
    cr_expect_eq(train("out", "--model vae --lr 1e30 " SMALL), 1);
    char *err = tg_cli_text("stderr");
    cr_expect(strstr(err, "non-finite") && strstr(err, "epoch"), "%s", err);
    free(err);
}
