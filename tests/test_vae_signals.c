/*
 * test_vae_signals.c — nothing is lost when `vae train` is stopped: SIGINT or
 * SIGTERM ends the step, saves and exits 0; SIGKILL at any moment leaves a
 * run that `--resume` completes. Either way the finished run is byte-identical
 * to one never stopped. The real build/vae runs on the synthetic dataset of
 * tests/vae_cli.c, as the other vae tests do.
 *
 * When a signal lands depends on the machine's speed, so the SIGKILL test
 * first times the run never stopped — when its first checkpoint appears, when
 * it ends — and aims its kills inside that window: some before the first
 * checkpoint, most between it and the end. It asserts that at least one kill
 * did land mid-run (a checkpoint on disk, the run still going), retiming and
 * trying again if the machine's speed changed too much under it; whatever
 * step each kill reached, the completed run must end with the same bytes.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define EPOCHS "20"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void sleep_s(double s) {
    if (s <= 0) return;
    struct timespec t = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&t, NULL);
}

/* True if the temporary file out/name exists. */
static bool has(const char *out, const char *name) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", tg_tmp(out), name);
    return access(path, F_OK) == 0;
}

/* Starts `build/vae train` (the same run every time) into out, with stdout
 * and stderr to out.log. */
static pid_t start_train(const char *out) {
    char data[512], dir[512], log[600];
    snprintf(data, sizeof data, "%s", tg_tmp("data"));
    snprintf(dir, sizeof dir, "%s", tg_tmp(out));
    snprintf(log, sizeof log, "%s.log", dir);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        dup2(fd, 1);
        dup2(fd, 2);
        execl("build/vae", "vae", "train", "--model", "cvae", "--prior", "learned", "--binarize", "dynamic",
              "--epochs", EPOCHS, "--batch", "16", "--hidden", "32", "--latent", "4", "--threads", "2", "--data",
              data, "--out", dir, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Seconds after its start at which a run never stopped had its first
 * checkpoint on disk, and at which it ended. */
typedef struct {
    double checkpoint, end;
} run_times;

/* Runs the training into out (a directory without a run's files) to the end,
 * watching for out/optimizer.safetensors, the commit point of a checkpoint. */
static run_times timed_run(const char *out) {
    double t0 = now(), checkpoint = -1;
    pid_t pid = start_train(out);
    int status;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        cr_assert(w == 0 || w == pid);
        if (checkpoint < 0 && has(out, "optimizer.safetensors")) checkpoint = now() - t0;
        if (w == pid) break;
        sleep_s(0.0005);
    }
    run_times t = {checkpoint, now() - t0};
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "%s: status %d", out, status);
    cr_log_info("%s: first checkpoint after %.3f s, ended after %.3f s", out, t.checkpoint, t.end);
    return t;
}

/* Starts a run into out, waits until it has written out/config.json (so its
 * handlers are installed), sleeps ms milliseconds, sends sig and returns the
 * wait status. */
static int train_and_signal(const char *out, int sig, int ms) {
    pid_t pid = start_train(out);
    for (int i = 0; i < 20000 && !has(out, "config.json"); i++) sleep_s(0.001);
    sleep_s(ms / 1000.0);
    kill(pid, sig);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void expect_same_run(const char *dir) {
    char a[512], b[512];
    static const char *files[] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(a, sizeof a, "%s/%s", tg_tmp("straight"), files[i]);
        snprintf(b, sizeof b, "%s/%s", tg_tmp(dir), files[i]);
        cr_expect(tg_cli_same_file(a, b), "%s: %s differs from the run never stopped", dir, files[i]);
    }
}

TestSuite(vae_signals, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

Test(vae_signals, sigint_and_sigterm_save_and_exit_0_then_resume_is_identical) {
    timed_run("straight");
    const int sigs[] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; i++) {
        const char *out = i ? "term" : "int";
        int st = train_and_signal(out, sigs[i], 30);
        cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: not a clean exit 0 (status %d)", out, st);
        char log[64];
        snprintf(log, sizeof log, "%s.log", out);
        char *s = tg_cli_text(log);
        cr_expect(strstr(s, "interrupted") && strstr(s, "--resume"), "%s", s);
        free(s);
        char a[600];
        snprintf(a, sizeof a, "train --resume %s", tg_tmp(out));
        cr_assert_eq(tg_cli_run(a), 0, "%s", tg_cli_text("stderr"));
        s = tg_cli_text("stdout");
        cr_expect(strstr(s, "continuing "), "%s", s);
        free(s);
        expect_same_run(out);
    }
}

/* Starts a run into out, SIGKILLs it delay seconds after its start, and says
 * whether the kill landed mid-run: with a checkpoint on disk and the run
 * still going. */
static bool kill_at(const char *out, double delay) {
    double t0 = now();
    pid_t pid = start_train(out);
    sleep_s(t0 + delay - now());
    bool checkpoint = has(out, "optimizer.safetensors");
    kill(pid, SIGKILL);
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    bool killed = WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL;
    cr_assert(killed || (WIFEXITED(st) && WEXITSTATUS(st) == 0), "%s: status %d", out, st);
    cr_log_info("%s: killed after %.3f s: %s", out, now() - t0,
                !killed ? "too late, the run had ended" : checkpoint ? "mid-run, after a checkpoint"
                                                                     : "before the first checkpoint");
    return killed && checkpoint;
}

/* Completes the killed run in out and checks it against the straight one.
 * With a checkpoint it resumes. Without one --resume must refuse, naming the
 * file it lacks (config.json, written at the start or with the first
 * checkpoint, or optimizer.safetensors), and the run starts again from
 * nothing in an emptied directory: never a fresh `train --out` into one that
 * holds files the killed run did write (images, model.safetensors). */
static void complete(const char *out) {
    char a[600];
    snprintf(a, sizeof a, "train --resume %s", tg_tmp(out));
    if (has(out, "optimizer.safetensors")) {
        cr_assert_eq(tg_cli_run(a), 0, "%s: %s", out, tg_cli_text("stderr"));
    } else {
        cr_expect_eq(tg_cli_run(a), 1);
        char *s = tg_cli_text("stderr");
        cr_expect(strstr(s, tg_tmp(out)) && (strstr(s, "/optimizer.safetensors: ") || strstr(s, "/config.json: ")),
                  "%s", s);
        free(s);
        tg_remove_tree(tg_tmp(out));
        timed_run(out);
    }
    expect_same_run(out);
}

Test(vae_signals, sigkill_anywhere_then_resume_is_identical) {
    run_times t = timed_run("straight");
    cr_assert(t.checkpoint < t.end, "the first checkpoint came after the run ended");
    int mid = 0, k = 0;
    for (int round = 0; round < 3 && !mid; round++) {
        if (round > 0) {   /* none landed mid-run: time the run again, now */
            char out[16];
            snprintf(out, sizeof out, "retime%d", round);
            t = timed_run(out);
        }
        /* Three kills spread between the first checkpoint and the end, and
         * (the first round only) two before that checkpoint. */
        const double w = t.end - t.checkpoint;
        const double delays[] = {t.checkpoint + 0.15 * w, t.checkpoint + 0.4 * w, t.checkpoint + 0.65 * w, 0,
                                 0.5 * t.checkpoint};
        for (int i = 0; i < (round ? 3 : 5); i++, k++) {
            char out[16];
            snprintf(out, sizeof out, "kill%d", k);
            mid += kill_at(out, delays[i]);
            complete(out);
        }
    }
    cr_assert(mid >= 1, "no SIGKILL landed between the first checkpoint and the end of the run in %d tries", k);
}
