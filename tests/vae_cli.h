/* vae_cli.h — running the real build/vae (or build/seed_vae) on a tiny
 * synthetic dataset, shared by the tests of the programs (test_vae_cli.c,
 * test_vae_eval.c, test_vae_resume.c, test_seed_vae.c, ...). The test binaries
 * depend on the programs in the Makefile, so they are never stale. */
#ifndef TG_TEST_VAE_CLI_H
#define TG_TEST_VAE_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "io/json.h"

#define TG_CLI_NTRAIN 64   /* synthetic train images (28x28, labels i % 10) */
#define TG_CLI_NTEST 32    /* synthetic test images */

/* n synthetic 28x28 images (n * 784 bytes) and labels i % 10 from a seed:
 * smooth class-dependent gray patterns with noise, using every level 0..255
 * (see vae_cli.c). The training set uses seed 7, the test set seed 11. */
void tg_cli_make_images(uint8_t *px, uint8_t *lab, int n, uint32_t seed);
/* dir (created if missing) with the four IDX files of ntrain and ntest such images. */
void tg_cli_write_data(const char *dir, int ntrain, int ntest);

/* Criterion .init: a temporary directory holding data/ with the four IDX files.
 * Every suite of the suite binary uses .timeout = 120: Criterion 2.4 leaks a
 * little memory (which LeakSanitizer reports) when suites with different
 * timeouts run in parallel. */
void tg_cli_setup(void);
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
/* Runs `build/vae train --data <tmp>/<data> --out <tmp>/<out> ARGS` into a
 * fresh directory <tmp>/<out> (which must not exist yet: `vae train` refuses
 * a directory holding a run), asserting it succeeds. */
void tg_cli_train(const char *data, const char *out, const char *args);

/* metrics.csv's columns. */
enum { TG_M_EPOCH, TG_M_TRAIN, TG_M_TEST, TG_M_RECON, TG_M_KL, TG_M_KL_WEIGHT, TG_M_SECONDS, TG_M_COLS };
/* <tmp>/<run>/metrics.csv: asserts the header and that every row holds
 * TG_M_COLS numbers; fills rows (at most cap) and returns the row count. */
int tg_cli_metrics(const char *run, double rows[][TG_M_COLS], int cap);

/* tg_cli_metrics, asserting n rows, and checks each: epochs 1..n, finite
 * figures, kl >= 0, seconds >= 0; test_loss = recon + kl to the printed
 * precision (six decimals, so within 1.5e-6); and train_loss, the objective
 * per image averaged over the epoch, within rel_tol of the same objective on
 * the test set, recon + kl_weight * kl (for data of one distribution, and a
 * kl_weight constant over the epoch). A train_loss per step instead of per
 * image is B times too large. */
void tg_cli_check_metrics(const char *run, int n, double rel_tol, double rows[][TG_M_COLS]);

/* Runs `vae eval --run <tmp>/<run> ARGS`, asserting it succeeds; returns its
 * stdout parsed (a JSON object; free with tg_json_free), and the text in
 * *text (malloc'd) if text is not NULL. */
tg_json *tg_cli_eval(const char *run, const char *args, char **text);
/* The elbo of `vae eval --run <tmp>/<run> --iw 1 --threads 1`. */
double tg_cli_eval_elbo(const char *run);

/* True if the two files hold the same bytes. */
bool tg_cli_same_file(const char *a, const char *b);

#endif
