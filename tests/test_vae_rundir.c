/*
 * test_vae_rundir.c — a run directory is never destroyed, shared or
 * mismatched (examples/vae/run_dir.h, examples/vae/train.h, examples/vae/main.c), through the
 * real build/vae: each case checks the exit code, one clear line on stderr,
 * and that the earlier run's files are byte-identical afterwards.
 */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "examples/vae/train.h"
#include "io/idx_write.h"
#include "io/json.h"
#include "io/safetensors.h"

#include "tests/child.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define SMALL "--batch 16 --hidden 32 --latent 4 --threads 1"

TestSuite(vae_rundir, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* `vae ARGS` in the repository; the printf-style args are formatted first. */
__attribute__((format(printf, 1, 2))) static int run(const char *fmt, ...) {
    char a[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(a, sizeof a, fmt, ap);
    va_end(ap);
    return tg_cli_run_limited(NULL, a, 0, 0, NULL);
}

static void train_ok(const char *out, const char *args) {
    int rc = run("train --data %s --out %s " SMALL " %s", tg_tmp("data"), tg_tmp(out), args);
    cr_assert_eq(rc, 0, "train %s %s: exit %d: %s", out, args, rc, tg_cli_text("stderr"));
}

/* ---------------------------------------------------------------- snapshots */

/* Every file of a directory, by name, with its bytes. */
typedef struct {
    int n;
    char name[64][256];
    uint8_t *data[64];
    size_t len[64];
} snapshot;

static int by_name(const void *a, const void *b) { return strcmp(a, b); }

static void snap(const char *dir, snapshot *s) {
    memset(s, 0, sizeof *s);
    DIR *d = opendir(dir);
    cr_assert(d, "cannot read %s", dir);
    for (struct dirent *de; (de = readdir(d));)
        if (de->d_name[0] != '.' && s->n < 64) snprintf(s->name[s->n++], 256, "%s", de->d_name);
    closedir(d);
    qsort(s->name, (size_t)s->n, 256, by_name);
    for (int i = 0; i < s->n; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", dir, s->name[i]);
        s->data[i] = tg_slurp(p, &s->len[i]);
    }
}

static void expect_unchanged(const char *dir, snapshot *before, const char *what) {
    snapshot now;
    snap(dir, &now);
    cr_expect_eq(now.n, before->n, "%s: %s has %d files, had %d", what, dir, now.n, before->n);
    for (int i = 0; i < before->n && i < now.n; i++)
        cr_expect(!strcmp(now.name[i], before->name[i]) && now.len[i] == before->len[i] &&
                      !memcmp(now.data[i], before->data[i], now.len[i]),
                  "%s: %s/%s changed", what, dir, before->name[i]);
    for (int i = 0; i < now.n; i++) free(now.data[i]);
    for (int i = 0; i < before->n; i++) free(before->data[i]);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* A copy of a tg_tmp() path that outlives tg_tmp's four rotating buffers
 * (messages are checked after other tg_tmp calls). */
static const char *keep(const char *s) {
    static char buf[16][1024];
    static int k;
    k = (k + 1) % 16;
    snprintf(buf[k], sizeof buf[k], "%s", s);
    return buf[k];
}

/* A copy of the synthetic dataset with the first n_train / n_test images, of
 * rows x cols (the pixels are re-cut from the same bytes). */
static void make_data(const char *dir, int64_t n_train, int64_t n_test, int64_t rows, int64_t cols) {
    tg_dataset ds;
    tg_err e;
    cr_assert_eq(tg_dataset_load(tg_tmp("data"), &ds, &e), 0, "%s", e.msg);
    mkdir(dir, 0777);
    char p[1024];
    const tg_images *x[] = {&ds.train_x, &ds.test_x};
    const tg_labels *y[] = {&ds.train_y, &ds.test_y};
    const char *names[2][2] = {{"train-images-idx3-ubyte", "train-labels-idx1-ubyte"},
                               {"t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"}};
    const int64_t n[] = {n_train, n_test};
    for (int k = 0; k < 2; k++) {
        uint8_t *px = calloc((size_t)(n[k] * rows * cols), 1);
        uint8_t *lab = malloc((size_t)n[k]);
        for (int64_t i = 0; i < n[k] * rows * cols; i++) px[i] = x[k]->pixels[i % (x[k]->n * 784)];
        for (int64_t i = 0; i < n[k]; i++) lab[i] = y[k]->labels[i % y[k]->n];
        snprintf(p, sizeof p, "%s/%s", dir, names[k][0]);
        cr_assert_eq(tg_idx_images_save(p, px, n[k], rows, cols, &e), 0, "%s", e.msg);
        snprintf(p, sizeof p, "%s/%s", dir, names[k][1]);
        cr_assert_eq(tg_idx_labels_save(p, lab, n[k], &e), 0, "%s", e.msg);
        free(px), free(lab);
    }
    tg_dataset_free(&ds);
}

/* Rewrites a safetensors file with the metadata key set to val (added if
 * absent) and, if nan_at >= 0, a NaN at that index of the first tensor. */
static void tamper(const char *path, const char *key, const char *val, int64_t nan_at) {
    tg_safetensors st;
    tg_err e;
    cr_assert_eq(tg_safetensors_read(path, &st, &e), 0, "%s", e.msg);
    const char *names[16], *keys[32], *vals[32];
    const tg_tensor *ts[16];
    int nm = 0;
    for (int i = 0; i < st.n; i++) names[i] = st.tensors[i].name, ts[i] = &st.tensors[i].tensor;
    for (int i = 0; i < st.n_meta; i++)
        if (!key || strcmp(st.meta_keys[i], key)) keys[nm] = st.meta_keys[i], vals[nm++] = st.meta_vals[i];
    if (key) keys[nm] = key, vals[nm++] = val;
    if (nan_at >= 0) tg_tensor_set(&st.tensors[0].tensor, nan_at, NAN);
    cr_assert_eq(tg_safetensors_write(path, st.n, names, ts, nm, keys, vals, &e), 0, "%s", e.msg);
    tg_safetensors_free(&st);
}

/* The value of a field of a run's config.json, as text. */
static char *config_field(const char *run, const char *key) {
    char p[1024];
    snprintf(p, sizeof p, "%s/config.json", run);
    size_t n;
    uint8_t *b = tg_slurp(p, &n);
    tg_err e;
    tg_json *doc = tg_json_parse((const char *)b, n, p, &e);
    cr_assert(doc, "%s", e.msg);
    const tg_json *v = tg_json_get(doc, key);
    char *out = malloc(4200);
    if (v && v->type == TG_JSON_STRING) snprintf(out, 4200, "%s", v->str);
    else if (v && v->type == TG_JSON_NUMBER) snprintf(out, 4200, "%.17g", v->num);
    else snprintf(out, 4200, "?");
    tg_json_free(doc);
    free(b);
    return out;
}

/* ---------------------------------------------------------------- 1. no overwrite */

Test(vae_rundir, fresh_train_into_a_run_is_refused_and_the_run_kept) {
    train_ok("A", "--model vae --likelihood gaussian --epochs 2");
    snapshot s;
    snap(tg_tmp("A"), &s);
    /* A run that would fail (NaN at once), another likelihood, another size: all refused first. */
    const char *others[] = {"--model vae --lr 1e30 --epochs 1", "--model vae --epochs 1", "--model vae --hidden 64"};
    for (int i = 0; i < 3; i++) {
        int rc = run("train --data %s --out %s %s", tg_tmp("data"), tg_tmp("A"), others[i]);
        const char *needles[] = {keep(tg_tmp("A")), "holds a run", "--resume", "--force", NULL};
        tg_cli_expect_error(others[i], rc, 1, needles);
    }
    expect_unchanged(tg_tmp("A"), &s, "refused trains");
    /* eval still reads the Gaussian run as Gaussian: its recon is a Gaussian NLL, far from a BCE's scale. */
    cr_assert_eq(run("eval --run %s --iw 2", tg_tmp("A")), 0, "%s", tg_cli_text("stderr"));
    char *j = config_field(tg_tmp("A"), "likelihood");
    cr_expect_str_eq(j, "gaussian");
    free(j);

    /* A directory holding one file a run writes (say the user's own metrics.csv) is refused too. */
    mkdir(tg_tmp("mine"), 0777);
    tg_spit(tg_tmp("mine/metrics.csv"), "mine\n", 5);
    tg_spit(tg_tmp("mine/notes.txt"), "notes\n", 6);
    snap(tg_tmp("mine"), &s);
    const char *needles[] = {"metrics.csv", "--force", NULL};
    tg_cli_expect_error("--out with a metrics.csv", run("train --data %s --out %s --model vae --epochs 1", tg_tmp("data"),
                                                         tg_tmp("mine")), 1, needles);
    expect_unchanged(tg_tmp("mine"), &s, "--out with a metrics.csv");
    /* Other files are no obstacle, and stay. */
    mkdir(tg_tmp("notes"), 0777);
    tg_spit(tg_tmp("notes/notes.txt"), "notes\n", 6);
    train_ok("notes", "--model vae --epochs 1");
    size_t n;
    uint8_t *b = tg_slurp(tg_tmp("notes/notes.txt"), &n);
    cr_expect(n == 6 && !memcmp(b, "notes\n", 6));
    free(b);
}

Test(vae_rundir, force_replaces_a_run_and_leaves_nothing_stale) {
    train_ok("A", "--model vae --epochs 2");
    train_ok("A", "--model vae --epochs 1 --seed 5 --force");
    cr_expect(exists(tg_tmp("A/sample_1.png")) && exists(tg_tmp("A/reconstruction_1.png")));
    cr_expect(!exists(tg_tmp("A/sample_2.png")) && !exists(tg_tmp("A/reconstruction_2.png")),
              "the old run's images of epoch 2 were left beside the new run");
    char *m = tg_cli_text("A/metrics.csv"), *seed = config_field(tg_tmp("A"), "seed");
    int rows = 0;
    for (char *p = m; *p; p++) rows += *p == '\n';
    cr_expect_eq(rows, 2, "metrics.csv: header and one row expected: %s", m);
    cr_expect_str_eq(seed, "5");
    free(m), free(seed);
    /* --force with a run that fails: the old files are gone (as asked), no new ones, no directory debris. */
    int rc = run("train --data %s --out %s --model vae --epochs 1 --lr 1e30 --force", tg_tmp("data"), tg_tmp("A"));
    const char *needles[] = {"non-finite", "no checkpoint written yet", NULL};
    tg_cli_expect_error("--force, then NaN", rc, 1, needles);
    const char *files[] = {"config.json", "metrics.csv", "model.safetensors", "optimizer.safetensors",
                           "sample_1.png", "reconstruction_1.png"};
    for (int i = 0; i < 6; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", tg_tmp("A"), files[i]);
        cr_expect(!exists(p), "%s left after --force", files[i]);
    }
}

Test(vae_rundir, failed_fresh_run_leaves_no_directory) {
    int rc = run("train --data %s --out %s --model vae --epochs 1 --lr 1e30", tg_tmp("data"), tg_tmp("new"));
    const char *needles[] = {"non-finite", NULL};
    tg_cli_expect_error("NaN in a new directory", rc, 1, needles);
    cr_expect(!exists(tg_tmp("new")), "the failed run left its directory");
}

/* ---------------------------------------------------------------- 2. default directories */

Test(vae_rundir, default_out_never_collides) {
    char a[1024];
    for (int seed = 1; seed <= 3; seed++) {
        snprintf(a, sizeof a, "train --model vae --epochs 1 " SMALL " --seed %d --data %s", seed, tg_tmp("data"));
        cr_assert_eq(tg_cli_run_limited(tg_tmpdir(), a, 0, 0, NULL), 0, "%s", tg_cli_text("stderr"));
    }
    DIR *d = opendir(tg_tmp("runs"));
    cr_assert(d);
    int n = 0, seen[4] = {0};
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.') continue;
        char run_dir[1024];
        snprintf(run_dir, sizeof run_dir, "%s/%s", tg_tmp("runs"), de->d_name);
        char *seed = config_field(run_dir, "seed");
        int sd = atoi(seed);
        if (sd >= 1 && sd <= 3) seen[sd]++;
        free(seed);
        n++;
    }
    closedir(d);
    cr_expect_eq(n, 3, "three runs, three directories (got %d)", n);
    cr_expect(seen[1] == 1 && seen[2] == 1 && seen[3] == 1, "each seed's run kept once");
}

Test(vae_rundir, unwritable_default_out_names_the_directory) {
    /* root may write anywhere but here */
    const char *ro = "/sys/kernel";
    if (access(ro, F_OK) != 0 || mkdir("/sys/kernel/runs", 0777) == 0) {
        cr_log_warn("no unwritable directory; skipped");
        return;
    }
    char a[1024];
    snprintf(a, sizeof a, "train --model vae --epochs 1 " SMALL " --data %s", tg_tmp("data"));
    const char *needles[] = {"runs: cannot create directory", NULL};
    tg_cli_expect_error("default --out, unwritable", tg_cli_run_limited(ro, a, 0, 0, NULL), 1, needles);
}

/* ---------------------------------------------------------------- 3. one writer */

/* Starts `vae train ARGS` in the background; its pid. */
static pid_t spawn(const char *args) {
    char exe[4096], buf[4096], *argv[64];
    cr_assert(getcwd(exe, sizeof exe - 16));
    strcat(exe, "/build/vae");
    snprintf(buf, sizeof buf, "%s", args);
    int argc = 0;
    argv[argc++] = "vae";
    for (char *t = strtok(buf, " "); t && argc < 63; t = strtok(NULL, " ")) argv[argc++] = t;
    argv[argc] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);   /* never outlives a failed test */
        int fd = open("/dev/null", O_WRONLY);
        dup2(fd, 1), dup2(fd, 2);
        execv(exe, argv);
        _exit(127);
    }
    return pid;
}

Test(vae_rundir, a_second_writer_fails_at_once) {
    char a[1024];
    snprintf(a, sizeof a, "train --model vae --epochs 100000 " SMALL " --data %s --out %s", tg_tmp("data"), tg_tmp("A"));
    pid_t pid = spawn(a);
    for (int i = 0; i < 2000 && !exists(tg_tmp("A/optimizer.safetensors")); i++)
        nanosleep(&(struct timespec){0, 10000000}, NULL);
    cr_assert(exists(tg_tmp("A/optimizer.safetensors")), "the first writer wrote no checkpoint in 20 s");
    /* Readers need no lock. */
    cr_expect_eq(run("eval --run %s --iw 2", tg_tmp("A")), 0, "eval of a run being written: %s", tg_cli_text("stderr"));
    char pidtext[64];
    snprintf(pidtext, sizeof pidtext, "(pid %ld)", (long)pid);
    const char *needles[] = {keep(tg_tmp("A")), "being written by another process", pidtext, NULL};
    time_t t0 = time(NULL);
    tg_cli_expect_error("--resume while training", run("train --resume %s", tg_tmp("A")), 1, needles);
    tg_cli_expect_error("--force while training",
                        run("train --data %s --out %s --model vae --force " SMALL, tg_tmp("data"), tg_tmp("A")), 1,
                        needles);
    cr_expect(time(NULL) - t0 < 10, "the second writer waited");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the first writer did not save and exit 0: %d", st);
    /* The lock went with it. */
    int64_t done = 0;
    tg_err e;
    cr_assert_eq(tg_train_checkpoint_epoch(tg_tmp("A"), &done, &e), 0, "%s", e.msg);
    cr_expect_eq(run("train --resume %s --epochs %lld", tg_tmp("A"), (long long)done + 1), 0, "%s",
                 tg_cli_text("stderr"));
}

/* ---------------------------------------------------------------- 4. data and checkpoints */

Test(vae_rundir, resume_and_eval_check_the_data) {
    make_data(tg_tmp("d"), 64, 32, 28, 28);
    make_data(tg_tmp("fewer"), 40, 32, 28, 28);
    make_data(tg_tmp("d32"), 64, 32, 32, 32);
    cr_assert_eq(run("train --data %s --out %s --model vae --epochs 1 " SMALL, tg_tmp("d"), tg_tmp("A")), 0);
    snapshot s;
    snap(tg_tmp("A"), &s);
    const char *fewer[] = {keep(tg_tmp("fewer")), "40 training images", "64", NULL};
    tg_cli_expect_error("--resume --data FEWER", run("train --resume %s --epochs 2 --data %s", tg_tmp("A"), tg_tmp("fewer")),
                        1, fewer);
    const char *size[] = {keep(tg_tmp("d32")), "32x32", "28x28", NULL};
    tg_cli_expect_error("--resume with 32x32 data", run("train --resume %s --epochs 2 --data %s", tg_tmp("A"), tg_tmp("d32")),
                        1, size);
    char *err = tg_cli_text("stderr");
    cr_expect(!strstr(err, "config.json"), "the data are at fault, not config.json: %s", err);
    free(err);
    tg_cli_expect_error("eval with 32x32 data", run("eval --run %s --iw 2 --data %s", tg_tmp("A"), tg_tmp("d32")), 1, size);
    expect_unchanged(tg_tmp("A"), &s, "resume with other data");
    /* The run's own data changed under it: eval (without --data) says so; other data named by --data may have
     * other counts. */
    make_data(tg_tmp("d"), 48, 24, 28, 28);
    const char *changed[] = {keep(tg_tmp("d")), "48 training images", "64", NULL};
    tg_cli_expect_error("eval, data changed", run("eval --run %s --iw 2", tg_tmp("A")), 1, changed);
    cr_expect_eq(run("eval --run %s --iw 2 --data %s", tg_tmp("A"), tg_tmp("fewer")), 0, "%s", tg_cli_text("stderr"));
}

Test(vae_rundir, data_path_is_stored_absolute) {
    char a[1024];
    snprintf(a, sizeof a, "train --model vae --epochs 1 " SMALL " --data data --out A");
    cr_assert_eq(tg_cli_run_limited(tg_tmpdir(), a, 0, 0, NULL), 0, "%s", tg_cli_text("stderr"));
    char *d = config_field(tg_tmp("A"), "data");
    cr_expect_str_eq(d, tg_tmp("data"));
    free(d);
    /* From another working directory (the repository's), eval and resume find the data. */
    cr_expect_eq(run("eval --run %s --iw 2", tg_tmp("A")), 0, "%s", tg_cli_text("stderr"));
    cr_expect_eq(run("train --resume %s --epochs 2", tg_tmp("A")), 0, "%s", tg_cli_text("stderr"));
}

Test(vae_rundir, checkpoints_of_another_run_are_refused) {
    train_ok("A", "--model vae --epochs 1 --seed 1");
    train_ok("B", "--model vae --epochs 1 --seed 2");
    size_t n;
    uint8_t *b = tg_slurp(tg_tmp("B/optimizer.safetensors"), &n);
    tg_spit(tg_tmp("A/optimizer.safetensors"), b, n);
    free(b);
    snapshot s;
    snap(tg_tmp("A"), &s);
    const char *opt[] = {"optimizer.safetensors", "another run", "\"seed\" is 2", "config.json has 1", NULL};
    tg_cli_expect_error("another seed's optimizer", run("train --resume %s --epochs 2", tg_tmp("A")), 1, opt);
    expect_unchanged(tg_tmp("A"), &s, "resume with another run's optimizer");
    b = tg_slurp(tg_tmp("B/model.safetensors"), &n);
    tg_spit(tg_tmp("A/model.safetensors"), b, n);
    free(b);
    const char *model[] = {"model.safetensors", "another run", "\"seed\" is 2", NULL};
    tg_cli_expect_error("another seed's model, eval", run("eval --run %s --iw 2", tg_tmp("A")), 1, model);
    tg_cli_expect_error("another seed's model, sample", run("sample --run %s --out %s", tg_tmp("A"), tg_tmp("x.png")), 1,
                        model);
    cr_expect(!exists(tg_tmp("x.png")));
}

Test(vae_rundir, a_tampered_position_is_refused_at_once) {
    train_ok("A", "--model vae --epochs 1");
    tamper(tg_tmp("A/optimizer.safetensors"), "epoch_step", "1000000000000000", -1);
    snapshot s;
    snap(tg_tmp("A"), &s);
    time_t t0 = time(NULL);
    const char *needles[] = {"optimizer.safetensors", "position", "step 1000000000000000", NULL};
    tg_cli_expect_error("epoch_step 1e15", run("train --resume %s --epochs 2", tg_tmp("A")), 1, needles);
    cr_expect(time(NULL) - t0 < 10, "resume took %lld s", (long long)(time(NULL) - t0));
    expect_unchanged(tg_tmp("A"), &s, "resume of a tampered position");
}

/* ---------------------------------------------------------------- 5. cyclical, extended */

/* The kl_weight column of run/metrics.csv (up to 8 rows): the count. */
static int kl_weights(const char *run, double w[8]) {
    char p[1024];
    snprintf(p, sizeof p, "%s/metrics.csv", run);
    size_t n;
    uint8_t *b = tg_slurp(p, &n);
    char *s = malloc(n + 1);
    memcpy(s, b, n), s[n] = 0;
    int k = 0;
    for (char *line = strchr(s, '\n'); line && line[1] && k < 8; line = strchr(line + 1, '\n')) {
        double v[7];
        if (sscanf(line + 1, "%lf,%lf,%lf,%lf,%lf,%lf,%lf", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) == 7)
            w[k++] = v[5];
    }
    free(s), free(b);
    return k;
}

Test(vae_rundir, extending_a_cyclical_run_keeps_its_schedule) {
    /* 64 images in batches of 16: 4 steps an epoch; one cycle over 2 epochs, ramping the whole cycle: the last
     * steps of epochs 1 and 2 (steps 3 and 7 of 8) train at 3/8 and 7/8. */
    train_ok("A", "--model annealed-vae --anneal cyclical --cycles 1 --ratio 1 --epochs 2");
    double w[8];
    cr_assert_eq(kl_weights(tg_tmp("A"), w), 2);
    cr_expect(fabs(w[0] - 0.375) < 1e-6 && fabs(w[1] - 0.875) < 1e-6, "%g %g", w[0], w[1]);
    char *before = tg_cli_text("A/metrics.csv");
    cr_assert_eq(run("train --resume %s --epochs 4", tg_tmp("A")), 0, "%s", tg_cli_text("stderr"));
    char *after = tg_cli_text("A/metrics.csv");
    cr_expect(!strncmp(before, after, strlen(before)), "the finished epochs' rows changed:\n%s\n%s", before, after);
    cr_assert_eq(kl_weights(tg_tmp("A"), w), 4);
    cr_expect(w[2] == 1 && w[3] == 1, "added epochs train at the schedule's end value 1: %g %g", w[2], w[3]);
    char *se = config_field(tg_tmp("A"), "schedule_epochs"), *ep = config_field(tg_tmp("A"), "epochs");
    cr_expect_str_eq(se, "2");
    cr_expect_str_eq(ep, "4");
    free(se), free(ep), free(before), free(after);
}

/* ---------------------------------------------------------------- 6, 7. memory and limits */

Test(vae_rundir, memory_that_cannot_be_had_is_a_clear_error) {
    TG_SKIP_UNDER_ASAN();
    char a[1024];
    /* A batch far larger than the data: the buffers hold the data's rows only. */
    snprintf(a, sizeof a, "train --model vae --epochs 1 --batch 1048576 --threads 1 --data %s --out %s",
             tg_tmp("data"), tg_tmp("big_batch"));
    cr_expect_eq(tg_cli_run_limited(NULL, a, 1000, 0, NULL), 0, "%s", tg_cli_text("stderr"));
    /* A model that cannot fit: refused before anything is made. */
    snprintf(a, sizeof a, "train --model vae --epochs 1 --hidden 1000000 --data %s --out %s", tg_tmp("data"),
             tg_tmp("huge"));
    const char *model[] = {"not enough memory", "parameters", "--hidden", NULL};
    tg_cli_expect_error("--hidden 1000000", tg_cli_run_limited(NULL, a, 1000, 0, NULL), 1, model);
    cr_expect(!exists(tg_tmp("huge")));
    /* A step that cannot fit: 4096 images in one batch through 8192 hidden units. */
    make_data(tg_tmp("d4096"), 4096, 32, 28, 28);
    snprintf(a, sizeof a, "train --model vae --epochs 1 --batch 4096 --hidden 8192 --threads 1 --data %s --out %s",
             tg_tmp("d4096"), tg_tmp("step"));
    const char *step[] = {"not enough memory", "4096 images", "--batch", NULL};
    tg_cli_expect_error("--batch 4096 --hidden 8192", tg_cli_run_limited(NULL, a, 700, 0, NULL), 1, step);
    cr_expect(!exists(tg_tmp("step")));
    /* eval of a run whose config.json asks for a model beyond memory (within the limits). */
    train_ok("A", "--model vae --epochs 1");
    char *c = tg_cli_text("A/config.json"), *p = strstr(c, "\"hidden\":[32]"), edited[4096];
    cr_assert(p, "%s", c);
    snprintf(edited, sizeof edited, "%.*s\"hidden\":[16777216]%s", (int)(p - c), c, p + strlen("\"hidden\":[32]"));
    tg_spit(tg_tmp("A/config.json"), edited, strlen(edited));
    free(c);
    snprintf(a, sizeof a, "eval --run %s --iw 2", tg_tmp("A"));
    const char *eval[] = {"not enough memory", NULL};
    tg_cli_expect_error("eval, a model beyond memory", tg_cli_run_limited(NULL, a, 1000, 0, NULL), 1, eval);
}

Test(vae_rundir, the_writer_enforces_the_readers_limits) {
    const char *msg = "hidden 16777217 is out of range [1, 16777216]";
    const char *flag[] = {"--hidden", msg, NULL};
    tg_cli_expect_error("--hidden 16777217",
                        run("train --data %s --out %s --model vae --hidden 16777217", tg_tmp("data"), tg_tmp("h")), 2,
                        flag);
    cr_expect(!exists(tg_tmp("h")));
    /* The reader says the same of a config.json holding it. */
    train_ok("A", "--model vae --epochs 1");
    char *c = tg_cli_text("A/config.json"), *p = strstr(c, "\"hidden\":[32]");
    cr_assert(p, "%s", c);
    char edited[4096];
    snprintf(edited, sizeof edited, "%.*s\"hidden\":[16777217]%s", (int)(p - c), c, p + strlen("\"hidden\":[32]"));
    tg_spit(tg_tmp("A/config.json"), edited, strlen(edited));
    const char *reader[] = {"config.json", msg, NULL};
    tg_cli_expect_error("config.json with hidden 16777217", run("eval --run %s --iw 2", tg_tmp("A")), 1, reader);
    free(c);
    /* Images of 1 x 100000: refused before training, as the reader would refuse the run. */
    make_data(tg_tmp("wide"), 8, 8, 1, 100000);
    const char *wide[] = {"image_cols 100000 is out of range [1, 65536]", NULL};
    tg_cli_expect_error("1x100000 images", run("train --data %s --out %s --model vae --epochs 1", tg_tmp("wide"),
                                               tg_tmp("w")), 1, wide);
    cr_expect(!exists(tg_tmp("w")));
}

/* ---------------------------------------------------------------- 8. messages */

Test(vae_rundir, long_paths_are_named_whole_and_checked_first) {
    char out[4200], a[8192];
    int k = snprintf(out, sizeof out, "%s/", tg_tmpdir());
    memset(out + k, 'x', 4070 - (size_t)k);
    out[4070] = 0;
    time_t t0 = time(NULL);
    snprintf(a, sizeof a, "train --data %s --out %s --model vae --epochs 1", tg_tmp("data"), out);
    const char *needles[] = {"--out", "too long", NULL};
    tg_cli_expect_error("4070-character --out", tg_cli_run_limited(NULL, a, 0, 0, NULL), 2, needles);
    cr_expect(time(NULL) - t0 < 5, "checked only after training");
    /* A long path in a message is not cut off: the reason follows it. */
    for (int i = 0; i < 3000; i++) out[k + i] = i % 200 == 199 ? '/' : 'y';
    out[k + 3000] = 0;
    snprintf(a, sizeof a, "eval --run %s", out);
    const char *whole[] = {out, "No such file or directory", NULL};
    tg_cli_expect_error("a 3000-character --run", tg_cli_run_limited(NULL, a, 0, 0, NULL), 1, whole);
}

/* ---------------------------------------------------------------- 9. debris */

Test(vae_rundir, temporaries_of_dead_processes_are_removed) {
    train_ok("A", "--model vae --epochs 1");
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    char p_dead[1024], p_live[1024];
    snprintf(p_dead, sizeof p_dead, "%s/model.safetensors.tmp.%ld", tg_tmp("A"), (long)dead);
    snprintf(p_live, sizeof p_live, "%s/sample.png.tmp.%ld", tg_tmp("A"), (long)getpid());
    tg_spit(p_dead, "half", 4);
    tg_spit(p_live, "being written", 13);
    cr_assert_eq(run("train --resume %s --epochs 2", tg_tmp("A")), 0, "%s", tg_cli_text("stderr"));
    cr_expect(!exists(p_dead), "a dead process's temporary file was left");
    cr_expect(exists(p_live), "a live process's temporary file was removed");
}

/* ---------------------------------------------------------------- 11. non-finite weights */

Test(vae_rundir, non_finite_weights_are_refused) {
    train_ok("A", "--model vae --epochs 1");
    tamper(tg_tmp("A/model.safetensors"), NULL, NULL, 3);
    const char *needles[] = {"model.safetensors", "non-finite", "fc1.weight", NULL};
    tg_cli_expect_error("sample, NaN weights", run("sample --run %s --out %s", tg_tmp("A"), tg_tmp("x.png")), 1, needles);
    cr_expect(!exists(tg_tmp("x.png")), "a sample of NaN weights was written");
    tg_cli_expect_error("eval, NaN weights", run("eval --run %s --iw 2", tg_tmp("A")), 1, needles);
}
