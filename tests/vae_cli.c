/* vae_cli.c — the vae command's test harness (see vae_cli.h). */
#include "vae_cli.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "data/write.h"
#include "tmpdir.h"

/* Image i: a bar whose row depends on its label, plus speckle. */
static void make_images(uint8_t *px, uint8_t *lab, int n, uint32_t seed) {
    uint32_t s = seed;
    for (int i = 0; i < n; i++) {
        lab[i] = (uint8_t)(i % 10);
        for (int p = 0; p < 28 * 28; p++) {
            int r = p / 28, c = p % 28;
            s = s * 1664525u + 1013904223u;
            int v = (r >= 2 + 2 * lab[i] && r < 6 + 2 * lab[i] && c > 3 && c < 24) ? 220 : 0;
            v += (int)(s >> 28);   /* 0..15 */
            px[i * 28 * 28 + p] = (uint8_t)v;
        }
    }
}

void tg_cli_setup(void) {
    tg_tmpdir_setup();
    static uint8_t px[TG_CLI_NTRAIN * 28 * 28], lab[TG_CLI_NTRAIN];
    tg_err e;
    mkdir(tg_tmp("data"), 0777);
    make_images(px, lab, TG_CLI_NTRAIN, 7);
    cr_assert_eq(tg_idx_images_save(tg_tmp("data/train-images-idx3-ubyte"), px, TG_CLI_NTRAIN, 28, 28, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_labels_save(tg_tmp("data/train-labels-idx1-ubyte"), lab, TG_CLI_NTRAIN, &e), 0, "%s", e.msg);
    make_images(px, lab, TG_CLI_NTEST, 11);
    cr_assert_eq(tg_idx_images_save(tg_tmp("data/t10k-images-idx3-ubyte"), px, TG_CLI_NTEST, 28, 28, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_labels_save(tg_tmp("data/t10k-labels-idx1-ubyte"), lab, TG_CLI_NTEST, &e), 0, "%s", e.msg);
}

int tg_cli_run(const char *args) {
    cr_assert_eq(access("build/vae", X_OK), 0, "build/vae is missing: run the suite with `make test` "
                 "from the repository root");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "build/vae %s >%s 2>%s", args, tg_tmp("stdout"), tg_tmp("stderr"));
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "%s: did not exit normally", cmd);
    return WEXITSTATUS(st);
}

char *tg_cli_text(const char *name) {
    size_t n;
    uint8_t *b = tg_slurp(tg_tmp(name), &n);
    char *s = malloc(n + 1);
    memcpy(s, b, n);
    s[n] = 0;
    free(b);
    return s;
}

bool tg_cli_same_file(const char *a, const char *b) {
    size_t na, nb;
    uint8_t *x = tg_slurp(a, &na), *y = tg_slurp(b, &nb);
    bool same = na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}
