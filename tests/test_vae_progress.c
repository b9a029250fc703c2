/*
 * test_vae_progress.c — `vae train` draws a progress bar on stderr when, and
 * only when, stderr is a terminal: run once with stderr on a pseudo-terminal
 * and once with it in a file, on the synthetic dataset of tests/vae_cli.c.
 */
#define _XOPEN_SOURCE 700   /* posix_openpt, grantpt, unlockpt, ptsname */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

TestSuite(vae_progress, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

Test(vae_progress, bar_on_a_terminal_plain_lines_otherwise) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert(master >= 0 && grantpt(master) == 0 && unlockpt(master) == 0, "no pseudo-terminal");
    char slave[256], data[512], out[512], log[512];
    snprintf(slave, sizeof slave, "%s", ptsname(master));
    snprintf(data, sizeof data, "%s", tg_tmp("data"));
    snprintf(out, sizeof out, "%s", tg_tmp("tty"));
    snprintf(log, sizeof log, "%s", tg_tmp("tty.stdout"));
    /* The parent holds the terminal open too, so reading it never races the
     * child's open or close; the output (about 1 kB) fits its buffer. */
    int tty = open(slave, O_RDWR | O_NOCTTY);
    cr_assert(tty >= 0, "cannot open %s", slave);
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int o = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0666);
        dup2(tty, 2);
        dup2(o, 1);
        execl("build/vae", "vae", "train", "--model", "vae", "--epochs", "2", "--batch", "24", "--hidden", "32",
              "--latent", "4", "--data", data, "--out", out, (char *)NULL);
        _exit(127);
    }
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    char buf[1 << 16];
    size_t n = 0;
    ssize_t r;
    fcntl(master, F_SETFL, O_NONBLOCK);
    while (n < sizeof buf - 1 && (r = read(master, buf + n, sizeof buf - 1 - n)) > 0) n += (size_t)r;
    buf[n] = 0;
    close(tty);
    close(master);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "status %d: %s", st, buf);
    cr_expect(strstr(buf, "\repoch 1/2 [") && strstr(buf, "\repoch 2/2 ["), "no bar on the terminal: %s", buf);
    cr_expect(strstr(buf, "3/3  loss ") && strstr(buf, "images/s"), "%s", buf);
    /* The per-epoch lines still go to stdout, and it has no bar. */
    char *s = tg_cli_text("tty.stdout");
    cr_expect(strstr(s, "epoch 2/2  train ") && !strchr(s, '\r'), "%s", s);
    /* 64 images in batches of 24, 24 and 16: the bar's loss at the end of an
     * epoch is per image, as the epoch's line (the last batch is partial). */
    const char *bar = NULL;
    for (const char *p = buf; (p = strstr(p, "\repoch 2/2 [")); p++) bar = p;
    cr_assert(bar && strstr(bar, "3/3  loss "), "%s", buf);
    double bar_loss = atof(strstr(bar, "3/3  loss ") + 10), line_loss = atof(strstr(s, "epoch 2/2  train ") + 17);
    cr_expect(fabs(bar_loss - line_loss) <= 1e-4 * (1 + fabs(line_loss)), "bar %.4f, epoch line %.4f", bar_loss,
              line_loss);
    free(s);

    /* stderr a file: nothing on it. */
    char a[1024];
    snprintf(a, sizeof a, "train --model vae --epochs 2 --batch 24 --hidden 32 --latent 4 --data %s --out %s",
             tg_tmp("data"), tg_tmp("file"));
    cr_assert_eq(tg_cli_run(a), 0);
    s = tg_cli_text("stderr");
    cr_expect_str_eq(s, "");
    free(s);
}

/* The --profile line of each epoch: the five phases and "other", each
 * seconds >= 0 with its share of the epoch's steps; the seconds add up to
 * the epoch's seconds in metrics.csv (printed to the millisecond), the
 * shares to 100%, and forward and backward take time (2048 images in 16
 * steps through 784-256-8: milliseconds each). Without the flag there is
 * no such line; with --resume it is allowed. */
static void check_profile_lines(const char *out, const char *run, int epochs) {
    double rows[8][TG_M_COLS];
    cr_assert_eq(tg_cli_metrics(run, rows, 8), epochs);
    static const char *const names[] = {"data", "zero_grad", "forward", "backward", "optimizer", "other"};
    const char *p = out;
    for (int ep = 0; ep < epochs; ep++) {
        p = strstr(p, "  time of the steps:");
        cr_assert_not_null(p, "epoch %d has no profile line: %s", ep + 1, out);
        double sum = 0, shares = 0, sec[6];
        for (int i = 0; i < 6; i++) {
            char key[32];
            snprintf(key, sizeof key, " %s ", names[i]);
            const char *q = strstr(p, key);
            cr_assert(q && (!strchr(p, '\n') || q < strchr(p, '\n')), "no %s in: %s", names[i], p);
            double share;
            cr_assert_eq(sscanf(q + strlen(key), "%lf s (%lf%%)", &sec[i], &share), 2, "%s", q);
            cr_expect(sec[i] >= 0 && share >= 0, "%s %.3f s (%.0f%%)", names[i], sec[i], share);
            sum += sec[i], shares += share;
        }
        cr_expect(sec[2] > 0 && sec[3] > 0, "forward %.3f s, backward %.3f s", sec[2], sec[3]);
        cr_expect(fabs(sum - rows[ep][TG_M_SECONDS]) <= 0.0005 + 0.0035, "phases %.4f s, epoch %.3f s", sum,
                  rows[ep][TG_M_SECONDS]);
        cr_expect(fabs(shares - 100) <= 3.5, "shares add up to %.1f%%", shares);
        p++;
    }
    cr_expect_null(strstr(p, "  time of the steps:"), "more lines than epochs: %s", out);
}

Test(vae_progress, profile_splits_each_epochs_steps) {
    tg_cli_write_data(tg_tmp("big"), 2048, 64);
    tg_cli_train("big", "prof", "--model vae --epochs 2 --batch 128 --hidden 256 --latent 8 --profile");
    char *s = tg_cli_text("stdout");
    check_profile_lines(s, "prof", 2);
    free(s);

    char a[1024];
    snprintf(a, sizeof a, "train --resume %s --epochs 3 --profile", tg_tmp("prof"));
    cr_assert_eq(tg_cli_run(a), 0, "%s", tg_cli_text("stderr"));
    s = tg_cli_text("stdout");
    cr_expect(strstr(s, "epoch 3/3  train ") && strstr(s, "  time of the steps:"), "%s", s);
    free(s);

    tg_cli_train("data", "plain", "--model vae --epochs 1 --batch 24 --hidden 32 --latent 4");
    s = tg_cli_text("stdout");
    cr_expect_null(strstr(s, "time of the steps"), "%s", s);
    free(s);
}
