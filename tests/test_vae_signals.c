/*
 * test_vae_signals.c — nothing is lost when `vae train` is stopped: SIGINT or
 * SIGTERM ends the step, saves and exits 0; SIGKILL at any moment leaves a
 * run that `--resume` completes. Either way the finished run is byte-identical
 * to one never stopped. The real build/vae runs on the synthetic dataset of
 * tests/vae_cli.c, as the other vae tests do.
 *
 * When the signal lands depends on the machine's speed; what is asserted does
 * not: whatever step was reached, the resumed run must end with the same
 * bytes. The runs are long enough (many small epochs) that the signals land
 * mid-run; the SIGINT test checks that it did.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

#define EPOCHS "40"

/* Starts `build/vae train` into out (stdout and stderr to out.log), waits
 * until it has written out/config.json (so its handlers are installed),
 * sleeps ms milliseconds, sends sig and returns the wait status. */
static int train_and_signal(const char *out, int sig, int ms) {
    char data[512], dir[512], log[600], cfg[600];
    snprintf(data, sizeof data, "%s", tg_tmp("data"));
    snprintf(dir, sizeof dir, "%s", tg_tmp(out));
    snprintf(log, sizeof log, "%s.log", dir);
    snprintf(cfg, sizeof cfg, "%s/config.json", dir);
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
    struct stat st;
    for (int i = 0; i < 20000 && stat(cfg, &st) != 0; i++) {
        struct timespec t = {0, 1000000};
        nanosleep(&t, NULL);
    }
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&t, NULL);
    kill(pid, sig);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return status;
}

/* The run in "straight", never stopped. */
static void straight(void) {
    char a[1024];
    snprintf(a, sizeof a,
             "train --model cvae --prior learned --binarize dynamic --epochs " EPOCHS " --batch 16 --hidden 32 "
             "--latent 4 --threads 2 --data %s --out %s", tg_tmp("data"), tg_tmp("straight"));
    cr_assert_eq(tg_cli_run(a), 0, "%s", tg_cli_text("stderr"));
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
    straight();
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

Test(vae_signals, sigkill_anywhere_then_resume_is_identical) {
    straight();
    const int delays[] = {0, 7, 40, 150, 500};
    for (int i = 0; i < 5; i++) {
        char out[16];
        snprintf(out, sizeof out, "kill%d", i);
        int st = train_and_signal(out, SIGKILL, delays[i]);
        cr_assert(WIFSIGNALED(st) || (WIFEXITED(st) && WEXITSTATUS(st) == 0), "%s: status %d", out, st);
        char a[600], opt[600];
        snprintf(opt, sizeof opt, "%s/optimizer.safetensors", tg_tmp(out));
        if (access(opt, F_OK) == 0) {
            snprintf(a, sizeof a, "train --resume %s", tg_tmp(out));
        } else {
            /* Killed before its first checkpoint: resuming says so; start again
             * (--force: a kill inside the first save may have left some files). */
            snprintf(a, sizeof a, "train --resume %s", tg_tmp(out));
            cr_expect_eq(tg_cli_run(a), 1);
            char *s = tg_cli_text("stderr");
            cr_expect(strstr(s, "optimizer.safetensors"), "%s", s);
            free(s);
            snprintf(a, sizeof a,
                     "train --model cvae --prior learned --binarize dynamic --epochs " EPOCHS " --batch 16 "
                     "--hidden 32 --latent 4 --threads 2 --data %s --out %s --force", tg_tmp("data"), tg_tmp(out));
        }
        cr_assert_eq(tg_cli_run(a), 0, "%s: %s", out, tg_cli_text("stderr"));
        expect_same_run(out);
    }
}
