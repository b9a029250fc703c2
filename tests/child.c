/* child.c — running code that must abort in a forked child (see child.h). */
#include "child.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int tg_child_run(void (*fn)(void), char *out, size_t n) {
    int fd[2];
    cr_assert_eq(pipe(fd), 0);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]), close(fd[1]);
        alarm(30);
        fn();
        _exit(0);
    }
    close(fd[1]);
    size_t got = 0;
    char sink[256];
    for (;;) {   /* to the end, past n too, so the child never blocks on a full pipe */
        char *dst = got + 1 < n ? out + got : sink;
        ssize_t k = read(fd[0], dst, dst == sink ? sizeof sink : n - 1 - got);
        if (k <= 0) break;
        if (dst != sink) got += (size_t)k;
    }
    out[got] = 0;
    close(fd[0]);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

void tg_expect_abort_(void (*fn)(void), ...) {
    char msg[2048];
    int sig = tg_child_run(fn, msg, sizeof msg);
    cr_expect_eq(sig, SIGABRT, "ended by signal %d (0: it returned), not SIGABRT; stderr: %s", sig, msg);
    va_list ap;
    va_start(ap, fn);
    for (const char *want; (want = va_arg(ap, const char *));)
        cr_expect(strstr(msg, want), "the message lacks \"%s\": %s", want, msg);
    va_end(ap);
}
