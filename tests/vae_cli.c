/* vae_cli.c — the vae command's test harness (see vae_cli.h). */
#include "tests/vae_cli.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "io/idx_write.h"
#include "io/json.h"
#include "tests/tmpdir.h"

/* Image i of class i % 10: a smooth wave across the image whose direction
 * and phase depend on the class (angle 18 k degrees), with a contrast drawn
 * per image and uniform noise of +-24 levels per pixel, clamped: every gray
 * level 0..255 occurs, so binarisation (p -> 255 with probability p / 255)
 * is a real draw, and the class is what the pattern tells. */
void tg_cli_make_images(uint8_t *px, uint8_t *lab, int n, uint32_t seed) {
    uint32_t s = seed;
#define NEXT24() (s = s * 1664525u + 1013904223u, s >> 8)
    const double pi = 3.14159265358979324;
    for (int i = 0; i < n; i++) {
        int k = i % 10;
        lab[i] = (uint8_t)k;
        double th = k * pi / 10, a = 0.6 + 0.4 * (NEXT24() / 16777216.0);
        for (int p = 0; p < 28 * 28; p++) {
            double u = ((p / 28 - 13.5) * cos(th) + (p % 28 - 13.5) * sin(th)) / 14;
            int v = (int)lround(127.5 + 127.5 * a * cos(1.5 * pi * u + k)) + (int)(NEXT24() % 49) - 24;
            px[i * 28 * 28 + p] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    }
#undef NEXT24
}

void tg_cli_write_data(const char *dir, int ntrain, int ntest) {
    int n = ntrain > ntest ? ntrain : ntest;
    uint8_t *px = malloc((size_t)n * 28 * 28), *lab = malloc((size_t)n);
    char p[512];
    tg_err e;
    cr_assert(mkdir(dir, 0777) == 0 || errno == EEXIST, "mkdir %s", dir);
    const struct {
        const char *images, *labels;
        int n;
        uint32_t seed;
    } parts[2] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte", ntrain, 7},
                  {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", ntest, 11}};
    for (int i = 0; i < 2; i++) {
        tg_cli_make_images(px, lab, parts[i].n, parts[i].seed);
        snprintf(p, sizeof p, "%s/%s", dir, parts[i].images);
        cr_assert_eq(tg_idx_images_save(p, px, parts[i].n, 28, 28, &e), 0, "%s", e.msg);
        snprintf(p, sizeof p, "%s/%s", dir, parts[i].labels);
        cr_assert_eq(tg_idx_labels_save(p, lab, parts[i].n, &e), 0, "%s", e.msg);
    }
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

void tg_cli_train(const char *data, const char *out, const char *args) {
    char a[4096], o[512];
    snprintf(o, sizeof o, "%s", tg_tmp(out));
    cr_assert(access(o, F_OK) != 0, "%s exists: every run gets a fresh directory", o);
    snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp(data), o, args);
    int rc = tg_cli_run(a);
    cr_assert_eq(rc, 0, "vae %s: exit %d: %s", a, rc, tg_cli_text("stderr"));
}

int tg_cli_metrics(const char *run, double rows[][TG_M_COLS], int cap) {
    char name[512];
    snprintf(name, sizeof name, "%s/metrics.csv", run);
    char *s = tg_cli_text(name);
    const char *hdr = "epoch,train_loss,test_loss,recon,kl,kl_weight,seconds\n";
    cr_assert(!strncmp(s, hdr, strlen(hdr)), "%s: header: %s", name, s);
    int n = 0;
    for (char *p = s + strlen(hdr); *p && n < cap; n++) {
        int used = 0;
        double *r = rows[n];
        cr_assert_eq(sscanf(p, "%lf,%lf,%lf,%lf,%lf,%lf,%lf%n", &r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6], &used),
                     TG_M_COLS, "%s: bad row: %s", name, p);
        p += used;
        cr_assert_eq(*p, '\n', "%s: a row ends in %s", name, p);
        p++;
    }
    free(s);
    return n;
}

void tg_cli_check_metrics(const char *run, int n, double rel_tol, double rows[][TG_M_COLS]) {
    cr_assert_eq(tg_cli_metrics(run, rows, n + 1), n, "%s/metrics.csv: rows", run);
    for (int i = 0; i < n; i++) {
        const double *r = rows[i];
        cr_expect_eq(r[TG_M_EPOCH], i + 1, "%s: row %d is epoch %g", run, i + 1, r[TG_M_EPOCH]);
        for (int j = 0; j < TG_M_COLS; j++) cr_assert(isfinite(r[j]), "%s: epoch %d, column %d: %g", run, i + 1, j, r[j]);
        cr_expect_geq(r[TG_M_KL], 0, "%s: epoch %d: kl %g", run, i + 1, r[TG_M_KL]);
        cr_expect_geq(r[TG_M_SECONDS], 0, "%s: epoch %d: seconds %g", run, i + 1, r[TG_M_SECONDS]);
        /* test_loss sums the batches' float32 objectives recon + kl: equal up to their rounding */
        cr_expect_leq(fabs(r[TG_M_TEST] - (r[TG_M_RECON] + r[TG_M_KL])), 1.5e-6 + 1e-7 * fabs(r[TG_M_TEST]),
                      "%s: epoch %d: test_loss %.6f != recon %.6f + kl %.6f", run, i + 1, r[TG_M_TEST], r[TG_M_RECON],
                      r[TG_M_KL]);
        double obj = r[TG_M_RECON] + r[TG_M_KL_WEIGHT] * r[TG_M_KL];
        cr_expect_leq(fabs(r[TG_M_TRAIN] - obj), rel_tol * obj,
                      "%s: epoch %d: train_loss %.4f is not within %g%% of the test objective recon + %g kl = %.4f",
                      run, i + 1, r[TG_M_TRAIN], 100 * rel_tol, r[TG_M_KL_WEIGHT], obj);
    }
}

tg_json *tg_cli_eval(const char *run, const char *args, char **text) {
    char a[2048];
    snprintf(a, sizeof a, "eval --run %s %s", tg_tmp(run), args);
    int rc = tg_cli_run(a);
    cr_assert_eq(rc, 0, "vae %s: exit %d: %s", a, rc, tg_cli_text("stderr"));
    char *s = tg_cli_text("stdout");
    tg_err e;
    tg_json *doc = tg_json_parse(s, strlen(s), "stdout", &e);
    cr_assert_not_null(doc, "%s", e.msg);
    cr_assert_eq(doc->type, TG_JSON_OBJECT, "%s", s);
    if (text) *text = s;
    else free(s);
    return doc;
}

double tg_cli_eval_elbo(const char *run) {
    tg_json *doc = tg_cli_eval(run, "--iw 1 --threads 1", NULL);
    double elbo;
    cr_assert_eq(tg_json_as_double(tg_json_get(doc, "elbo"), &elbo), 0, "vae eval: no elbo");
    tg_json_free(doc);
    return elbo;
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
