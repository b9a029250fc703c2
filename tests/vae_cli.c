/* vae_cli.c — the vae command's test harness (see vae_cli.h). */
#include "vae_cli.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

void tg_cli_write_data(const char *dir, int ntrain, int ntest) {
    char path[4][512];
    static const char *const names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    for (int k = 0; k < 4; k++) snprintf(path[k], sizeof path[k], "%s/%s", dir, names[k]);
    int nmax = ntrain > ntest ? ntrain : ntest;
    uint8_t *px = malloc((size_t)nmax * 28 * 28), *lab = malloc((size_t)nmax);
    tg_err e;
    mkdir(dir, 0777);
    make_images(px, lab, ntrain, 7);
    cr_assert_eq(tg_idx_images_save(path[0], px, ntrain, 28, 28, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_labels_save(path[1], lab, ntrain, &e), 0, "%s", e.msg);
    make_images(px, lab, ntest, 11);
    cr_assert_eq(tg_idx_images_save(path[2], px, ntest, 28, 28, &e), 0, "%s", e.msg);
    cr_assert_eq(tg_idx_labels_save(path[3], lab, ntest, &e), 0, "%s", e.msg);
    free(px);
    free(lab);
}

void tg_cli_setup(void) {
    tg_tmpdir_setup();
    tg_cli_write_data(tg_tmp("data"), TG_CLI_NTRAIN, TG_CLI_NTEST);
}

int tg_cli_run_program(const char *program, const char *args) {
    cr_assert_eq(access(program, X_OK), 0, "%s is missing: run the suite with `make test` "
                 "from the repository root", program);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s %s >%s 2>%s", program, args, tg_tmp("stdout"), tg_tmp("stderr"));
    int st = system(cmd);
    cr_assert(WIFEXITED(st), "%s: did not exit normally", cmd);
    return WEXITSTATUS(st);
}

int tg_cli_run(const char *args) { return tg_cli_run_program("build/vae", args); }

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

int tg_cli_run_limited(const char *cwd, const char *args, long as_mb, long fsize, const char *out_path) {
    char buf[8192], *argv[64], exe[4096];
    int argc = 0;
    cr_assert(getcwd(exe, sizeof exe - 16));
    strcat(exe, "/build/vae");
    snprintf(buf, sizeof buf, "%s", args);
    argv[argc++] = "vae";
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    char so[512], se[512];
    snprintf(so, sizeof so, "%s", out_path ? out_path : tg_tmp("stdout"));
    snprintf(se, sizeof se, "%s", tg_tmp("stderr"));
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        dup2(open(so, O_WRONLY | O_CREAT | O_TRUNC, 0666), 1);
        dup2(open(se, O_WRONLY | O_CREAT | O_TRUNC, 0666), 2);
        if (cwd && chdir(cwd) != 0) _exit(126);
        if (as_mb) setrlimit(RLIMIT_AS, &(struct rlimit){(rlim_t)as_mb << 20, (rlim_t)as_mb << 20});
        if (fsize) {
            signal(SIGXFSZ, SIG_IGN);
            setrlimit(RLIMIT_FSIZE, &(struct rlimit){(rlim_t)fsize, (rlim_t)fsize});
        }
        execv(exe, argv);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_assert(WIFEXITED(st), "vae %s: killed by signal %d", args, WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    return WEXITSTATUS(st);
}

void tg_cli_expect_error(const char *what, int got, int rc, const char *const needles[]) {
    char *err = tg_cli_text("stderr");
    cr_log_info("%s -> exit %d: %s", what, got, err);   /* the messages, with --verbose */
    cr_expect_eq(got, rc, "%s: exit %d, expected %d (%s)", what, got, rc, err);
    for (int i = 0; needles[i]; i++) cr_expect(strstr(err, needles[i]), "%s: message lacks \"%s\": %s", what, needles[i], err);
    cr_expect(strchr(err, '\n') && strchr(err, '\n') == strrchr(err, '\n'), "%s: one line expected: %s", what, err);
    free(err);
}
