/* vae_cli.h — running the real build/vae (or build/seed_vae) on a tiny
 * synthetic dataset, shared by the tests of the programs (test_vae_cli.c,
 * test_vae_eval.c, test_vae_resume.c, test_seed_vae.c, ...). The test binaries
 * depend on the programs in the Makefile, so they are never stale. */
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
/* Writes the four IDX files of a synthetic dataset into dir (created if
 * missing): ntrain and ntest 28x28 images, image i a bar at a height set by
 * its label i % 10, plus speckle; tg_cli_setup's data/ is one. */
void tg_cli_write_data(const char *dir, int ntrain, int ntest);
/* Runs `PROGRAM ARGS` (e.g. "build/seed_vae") with stdout and stderr captured
 * in the temporary directory (files "stdout", "stderr"); returns the exit code. */
int tg_cli_run_program(const char *program, const char *args);
/* tg_cli_run_program("build/vae", args). */
int tg_cli_run(const char *args);
/* Runs build/vae with args (split on spaces) in the directory cwd (NULL:
 * the current one) under the limits given (0 = none): address space in MiB,
 * file size in bytes (writes past it fail with EFBIG, as on a full disk).
 * stdout and stderr go to the temporary files "stdout" and "stderr" (stdout
 * to out_path if given). Returns the exit code, failing on any signal. */
int tg_cli_run_limited(const char *cwd, const char *args, long as_mb, long fsize, const char *out_path);
/* Expects exit code rc (got) and exactly one line on stderr containing each
 * of the needles (NULL-terminated); what names the case in failures. */
void tg_cli_expect_error(const char *what, int got, int rc, const char *const needles[]);
/* The temporary file name's contents, NUL-terminated, malloc'd. */
char *tg_cli_text(const char *name);
/* True if the two files hold the same bytes. */
bool tg_cli_same_file(const char *a, const char *b);

#endif
