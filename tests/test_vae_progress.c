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
