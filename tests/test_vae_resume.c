/*
 * test_vae_resume.c — `vae train --resume DIR` (examples/vae.c,
 * models/train.c) run through the real binary on a tiny synthetic dataset,
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

#include "data/write.h"

#include "tmpdir.h"

#define NTRAIN 64
#define NTEST 32
#define SMALL "--batch 16 --hidden 32 --latent 4 --threads 1"

static void make_images(uint8_t *px, uint8_t *lab, int n, uint32_t seed) {
    uint32_t s = seed;
    for (int i = 0; i < n; i++) {
        lab[i] = (uint8_t)(i % 10);
        for (int p = 0; p < 28 * 28; p++) {
            int r = p / 28, c = p % 28;
            s = s * 1664525u + 1013904223u;
            int v = (r >= 2 + 2 * lab[i] && r < 6 + 2 * lab[i] && c > 3 && c < 24) ? 220 : 0;
            v += (int)(s >> 28);
            px[i * 28 * 28 + p] = (uint8_t)v;
        }
    }
}

static void setup(void) {
    tg_tmpdir_setup();
    static uint8_t px[NTRAIN * 28 * 28], lab[NTRAIN];
    tg_err e;
    mkdir(tg_tmp("data"), 0777);
    make_images(px, lab, NTRAIN, 7);
    cr_assert_eq(tg_idx_images_save(tg_tmp("data/train-images-idx3-ubyte"), px, NTRAIN, 28, 28, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_labels_save(tg_tmp("data/train-labels-idx1-ubyte"), lab, NTRAIN, &e), 0, "%s", e.msg);
    make_images(px, lab, NTEST, 11);
    cr_assert_eq(tg_idx_images_save(tg_tmp("data/t10k-images-idx3-ubyte"), px, NTEST, 28, 28, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_labels_save(tg_tmp("data/t10k-labels-idx1-ubyte"), lab, NTEST, &e), 0, "%s", e.msg);
}

/* Builds build/vae once, serialised with tests/test_vae_cli.c by its lock. */
static void need_binary(void) {
    int fd = open("build/.test_vae_cli.lock", O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        mkdir("build", 0777);
        fd = open("build/.test_vae_cli.lock", O_RDWR | O_CREAT, 0644);
    }
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fd >= 0) fcntl(fd, F_SETLKW, &fl);
    int rc = system("env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s build/vae >/dev/null 2>&1");
    if (fd >= 0) {
        fl.l_type = F_UNLCK;
        fcntl(fd, F_SETLK, &fl);
        close(fd);
    }
    if (rc != 0 || access("build/vae", X_OK) != 0) cr_skip_test("build/vae could not be built (run `make build/vae`)");
}

static int run(const char *fmt, const char *a, const char *b) {
    need_binary();
    char args[2048], cmd[4096];
    snprintf(args, sizeof args, fmt, a, b);
    snprintf(cmd, sizeof cmd, "build/vae %s >%s 2>%s", args, tg_tmp("stdout"), tg_tmp("stderr"));
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "%s: did not exit normally", cmd);
    return WEXITSTATUS(st);
}

static char *text(const char *name) {
    size_t n;
    uint8_t *b = tg_slurp(tg_tmp(name), &n);
    cr_assert_not_null(b, "cannot read %s", name);
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    free(b);
    return s;
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *x = tg_slurp(tg_tmp(a), &na), *y = tg_slurp(tg_tmp(b), &nb);
    cr_assert(x && y, "cannot read %s or %s", a, b);
    bool same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

/* metrics.csv without its last column (seconds). */
static char *metrics_no_seconds(const char *name) {
    char *s = text(name), *out = malloc(strlen(s) + 1), *o = out;
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
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", text("stderr"));
    snprintf(a, sizeof a, "%s --epochs 1 " SMALL " %s", tg_tmp("b"), model_args);
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", text("stderr"));
    cr_assert(!same_file("a/model.safetensors", "b/model.safetensors"));
    cr_assert_eq(run("train --resume %s --epochs 2%s", tg_tmp("b"), ""), 0, "%s", text("stderr"));
    cr_expect(same_file("a/model.safetensors", "b/model.safetensors"), "model.safetensors differs");
    cr_expect(same_file("a/optimizer.safetensors", "b/optimizer.safetensors"), "optimizer.safetensors differs");
    char *ma = metrics_no_seconds("a/metrics.csv"), *mb = metrics_no_seconds("b/metrics.csv");
    cr_expect_str_eq(ma, mb);
    free(ma);
    free(mb);
}

TestSuite(vae_resume, .init = setup, .fini = tg_tmpdir_teardown, .timeout = 60);

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
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", text("stderr"));
    char *before = text("a/metrics.csv");
    size_t n0, n1;
    uint8_t *m0 = tg_slurp(tg_tmp("a/model.safetensors"), &n0);
    cr_assert_eq(run("train --resume %s%s", tg_tmp("a"), ""), 0, "%s", text("stderr"));
    char *s = text("stdout");
    cr_expect(strstr(s, "nothing to do"), "%s", s);
    free(s);
    cr_assert_eq(run("train --resume %s --epochs 1%s", tg_tmp("a"), ""), 0, "%s", text("stderr"));
    char *after = text("a/metrics.csv");
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
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", text("stderr"));
    cr_assert_eq(run("train --resume %s --lr 0.1%s", tg_tmp("a"), ""), 2);
    char *s = text("stderr");
    cr_expect(strstr(s, "--lr"), "%s", s);
    free(s);
    cr_assert_eq(run("train --model vae --resume %s%s", tg_tmp("a"), ""), 2);
    s = text("stderr");
    cr_expect(strstr(s, "--model"), "%s", s);
    free(s);
}

Test(vae_resume, truncated_model_is_an_error) {
    char a[1024];
    snprintf(a, sizeof a, "%s --epochs 1 " SMALL " --model vae", tg_tmp("b"));
    cr_assert_eq(run("train --data %s --out %s", tg_tmp("data"), a), 0, "%s", text("stderr"));
    char path[1024];
    snprintf(path, sizeof path, "%s", tg_tmp("b/model.safetensors"));
    cr_assert_eq(truncate(path, 100), 0);
    char *opt0 = text("b/optimizer.safetensors"), *csv0 = text("b/metrics.csv"), *cfg0 = text("b/config.json");
    cr_assert_eq(run("train --resume %s --epochs 2%s", tg_tmp("b"), ""), 1);
    char *s = text("stderr");
    cr_expect(strstr(s, "model.safetensors"), "%s", s);
    free(s);
    char *opt1 = text("b/optimizer.safetensors"), *csv1 = text("b/metrics.csv"), *cfg1 = text("b/config.json");
    cr_expect(!strcmp(csv0, csv1) && !strcmp(cfg0, cfg1) && !memcmp(opt0, opt1, 8), "files changed");
    struct stat st;
    cr_expect(stat(path, &st) == 0 && st.st_size == 100, "model.safetensors changed");
    free(opt0), free(opt1), free(csv0), free(csv1), free(cfg0), free(cfg1);
}
