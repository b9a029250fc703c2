/* vae_cli.h — running the real build/vae on a tiny synthetic dataset, shared
 * by the tests of the vae command (test_vae_cli.c, test_vae_eval.c,
 * test_vae_resume.c). `make test` builds build/vae before the suite runs. */
#ifndef TG_TEST_VAE_CLI_H
#define TG_TEST_VAE_CLI_H

#include <stdbool.h>

#define TG_CLI_NTRAIN 64   /* synthetic train images (28x28, labels i % 10) */
#define TG_CLI_NTEST 32    /* synthetic test images */

/* Criterion .init: a temporary directory holding data/ with the four IDX files.
 * Every suite of the suite binary uses .timeout = 120: Criterion 2.4 leaks a
 * little memory (which LeakSanitizer reports) when suites with different
 * timeouts run in parallel. */
void tg_cli_setup(void);
/* Runs `build/vae ARGS` with stdout and stderr captured in the temporary
 * directory (files "stdout", "stderr"); returns the exit code. */
int tg_cli_run(const char *args);
/* The temporary file name's contents, NUL-terminated, malloc'd. */
char *tg_cli_text(const char *name);
/* True if the two files hold the same bytes. */
bool tg_cli_same_file(const char *a, const char *b);

#endif
