/*
 * test_vae_resume.c — `vae train --resume DIR` (examples/vae/main.c,
 * examples/vae/train.c) run through the real binary on a tiny synthetic dataset,
 * as tests/test_vae_cli.c does: one epoch and a resume to two give the same
 * bytes as two epochs straight; finished runs, extra flags and damaged
 * checkpoints are refused without touching the files.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/safetensors.h"

#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define SMALL "--batch 16 --hidden 32 --latent 4 --threads 1"




/* tg_cli_run with the arguments built from fmt, a and b. */
static int run(const char *fmt, const char *a, const char *b) {
    char args[2048];
    snprintf(args, sizeof args, fmt, a, b);
    return tg_cli_run(args);
}



/* metrics.csv without its last column (seconds). */
static char *metrics_no_seconds(const char *name) {
    char *s = tg_cli_text(name), *out = malloc(strlen(s) + 1), *o = out;
    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n'), *end = nl ? nl : line + strlen(line);
        char *comma = line;
        for (char *p = line; p < end; p++)
            if (*p == ',') comma = p;
        memcpy(o, line, (size_t)(comma - line));
        o += comma - line;
        *o++ = '\n';
        line = nl ? nl + 1 : end;
    }
    *o = 0;
    free(s);
    return out;
}

/* Two epochs straight into "a"; one epoch into "b", then resumed to two. */
static void straight_vs_resumed(const char *model_args) {
    char a[1024];
    snprintf(a, sizeof a, "%s --epochs 2 " SMALL " %s", tg_tmp("a"), model_args);
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    snprintf(a, sizeof a, "%s --epochs 1 " SMALL " %s", tg_tmp("b"), model_args);
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    cr_assert(!tg_cli_same_file(tg_tmp("a/model.safetensors"), tg_tmp("b/model.safetensors")));
    cr_assert_eq(run("train --resume %s --epochs 2%s", tg_tmp("b"), ""), 0, "%s", tg_cli_text("stderr"));
    cr_expect(tg_cli_same_file(tg_tmp("a/model.safetensors"), tg_tmp("b/model.safetensors")), "model.safetensors differs");
    cr_expect(tg_cli_same_file(tg_tmp("a/optimizer.safetensors"), tg_tmp("b/optimizer.safetensors")), "optimizer.safetensors differs");
    char *ma = metrics_no_seconds("a/metrics.csv"), *mb = metrics_no_seconds("b/metrics.csv");
    cr_expect_str_eq(ma, mb);
    free(ma);
    free(mb);
}

TestSuite(vae_resume, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

Test(vae_resume, vae) { straight_vs_resumed("--model vae"); }

Test(vae_resume, annealed_vae_by_step_static_binarize) {
    straight_vs_resumed("--model annealed-vae --anneal-steps 5 --binarize static");
}

Test(vae_resume, cvae_learned_prior_dynamic_binarize) {
    straight_vs_resumed("--model cvae --prior learned --binarize dynamic");
}

Test(vae_resume, finished_run_is_left_alone) {
    char a[1024];
    snprintf(a, sizeof a, "%s --epochs 2 " SMALL " --model vae", tg_tmp("a"));
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    char *before = tg_cli_text("a/metrics.csv");
    size_t n0, n1;
    uint8_t *m0 = tg_slurp(tg_tmp("a/model.safetensors"), &n0);
    cr_assert_eq(run("train --resume %s%s", tg_tmp("a"), ""), 0, "%s", tg_cli_text("stderr"));
    char *s = tg_cli_text("stdout");
    cr_expect(strstr(s, "nothing to do"), "%s", s);
    free(s);
    cr_assert_eq(run("train --resume %s --epochs 1%s", tg_tmp("a"), ""), 0, "%s", tg_cli_text("stderr"));
    char *after = tg_cli_text("a/metrics.csv");
    cr_expect_str_eq(before, after);
    uint8_t *m1 = tg_slurp(tg_tmp("a/model.safetensors"), &n1);
    cr_expect(m0 && m1 && n0 == n1 && !memcmp(m0, m1, n0), "model.safetensors changed");
    free(m0);
    free(m1);
    free(before);
    free(after);
}

Test(vae_resume, other_flags_are_refused) {
    char a[1024];
    snprintf(a, sizeof a, "%s --epochs 1 " SMALL " --model vae", tg_tmp("a"));
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    cr_assert_eq(run("train --resume %s --lr 0.1%s", tg_tmp("a"), ""), 2);
    char *s = tg_cli_text("stderr");
    cr_expect(strstr(s, "--lr"), "%s", s);
    free(s);
    cr_assert_eq(run("train --model vae --resume %s%s", tg_tmp("a"), ""), 2);
    s = tg_cli_text("stderr");
    cr_expect(strstr(s, "--model"), "%s", s);
    free(s);
}

Test(vae_resume, truncated_optimizer_is_an_error) {
    char a[1024];
    snprintf(a, sizeof a, "%s --epochs 1 " SMALL " --model vae", tg_tmp("b"));
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    char path[1024];
    snprintf(path, sizeof path, "%s", tg_tmp("b/optimizer.safetensors"));
    cr_assert_eq(truncate(path, 100), 0);
    char *m0 = tg_cli_text("b/model.safetensors"), *csv0 = tg_cli_text("b/metrics.csv"), *cfg0 = tg_cli_text("b/config.json");
    cr_assert_eq(run("train --resume %s --epochs 2%s", tg_tmp("b"), ""), 1);
    char *s = tg_cli_text("stderr");
    cr_expect(strstr(s, "optimizer.safetensors"), "%s", s);
    free(s);
    char *m1 = tg_cli_text("b/model.safetensors"), *csv1 = tg_cli_text("b/metrics.csv"), *cfg1 = tg_cli_text("b/config.json");
    cr_expect(!strcmp(csv0, csv1) && !strcmp(cfg0, cfg1) && !memcmp(m0, m1, 8), "files changed");
    struct stat st;
    cr_expect(stat(path, &st) == 0 && st.st_size == 100, "optimizer.safetensors changed");
    free(m0), free(m1), free(csv0), free(csv1), free(cfg0), free(cfg1);
}

/* The resume takes everything from optimizer.safetensors, the commit point:
 * a damaged model.safetensors (a kill cannot cause one, but a user can) is
 * simply written again, and the run still ends byte-identical. */
Test(vae_resume, model_file_is_rebuilt_from_the_checkpoint) {
    char a[1024];
    snprintf(a, sizeof a, "%s --epochs 2 " SMALL " --model vae", tg_tmp("a"));
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    snprintf(a, sizeof a, "%s --epochs 1 " SMALL " --model vae", tg_tmp("b"));
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    cr_assert_eq(truncate(tg_tmp("b/model.safetensors"), 100), 0);
    cr_assert_eq(run("train --resume %s --epochs 2%s", tg_tmp("b"), ""), 0, "%s", tg_cli_text("stderr"));
    cr_expect(tg_cli_same_file(tg_tmp("a/model.safetensors"), tg_tmp("b/model.safetensors")));
}

/* Training that turns non-finite in a later epoch stops naming the epoch,
 * the step and the quantity, and leaves the last good epoch's files as they
 * were. Adam's second moments are set to -1e30 in the checkpoint, so the
 * first step of epoch 2 writes NaN parameters and the second step's loss is
 * NaN. */
Test(vae_resume, non_finite_in_a_later_epoch_keeps_the_last_good_files) {
    char a[1024];
    snprintf(a, sizeof a, "%s --epochs 1 " SMALL " --model vae", tg_tmp("b"));
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", tg_cli_text("stderr"));
    tg_safetensors st;
    tg_err e;
    cr_assert_eq(tg_safetensors_read(tg_tmp("b/optimizer.safetensors"), &st, &e), 0, "%s", e.msg);
    const char *names[8];
    const tg_tensor *ts[8];
    cr_assert(st.n <= 8);
    for (int i = 0; i < st.n; i++) {
        names[i] = st.tensors[i].name, ts[i] = &st.tensors[i].tensor;
        if (!strcmp(names[i], "adam.v"))
            for (int64_t j = 0; j < ts[i]->numel; j++) TG_F32P(ts[i])[j] = -1e30f;
    }
    cr_assert_eq(tg_safetensors_write(tg_tmp("b/optimizer.safetensors"), st.n, names, ts, st.n_meta,
                                      (const char *const *)st.meta_keys, (const char *const *)st.meta_vals, &e),
                 0, "%s", e.msg);
    tg_safetensors_free(&st);
    static const char *files[] = {"b/model.safetensors", "b/optimizer.safetensors", "b/metrics.csv",
                                  "b/sample_1.png", "b/reconstruction_1.png"};
    size_t n0[5];
    uint8_t *before[5];
    for (int i = 0; i < 5; i++) before[i] = tg_slurp(tg_tmp(files[i]), &n0[i]);

    cr_assert_eq(run("train --resume %s --epochs 3%s", tg_tmp("b"), ""), 1);
    char *s = tg_cli_text("stderr");
    cr_expect(strstr(s, "non-finite loss at epoch 2, step 2; last good checkpoint kept in"), "%s", s);
    free(s);
    for (int i = 0; i < 5; i++) {
        size_t n1;
        uint8_t *after = tg_slurp(tg_tmp(files[i]), &n1);
        cr_expect(n0[i] == n1 && !memcmp(before[i], after, n1), "%s changed", files[i]);
        free(before[i]);
        free(after);
    }
    cr_expect(access(tg_tmp("b/sample_2.png"), F_OK) != 0, "an image of the failed epoch was written");
    /* The kept model is the good one of epoch 1. */
    cr_assert_eq(run("eval --run %s --iw 2%s", tg_tmp("b"), ""), 0, "%s", tg_cli_text("stderr"));
    s = tg_cli_text("stdout");
    cr_expect(strstr(s, "\"elbo\"") && !strstr(s, "nan"), "%s", s);
    free(s);
}
