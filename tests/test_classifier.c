/*
 * test_classifier.c — build/mlp_classifier, the 784-256-10 cross-entropy
 * example: one epoch on Fashion-MNIST reaches PyTorch's accuracy, the run is
 * the same for any thread count, and bad flags or data are refused with a
 * message naming them.
 *
 * The accuracy band: bench/torch_classifier.py (the same model, Adam 1e-3,
 * batch 128, one epoch) reached 0.826-0.840 over seeds 1-3 on this dataset
 * (PyTorch 1.13, the numbers in README.md). A classifier whose loss or
 * gradient were wrong (a swapped label, a dropped row of the softmax's
 * gradient) does not get there in one epoch; one that is right does not fall
 * below 0.80 (chance is 0.10).
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tmpdir.h"
#include "vae_cli.h"

#define FASHION "/usr/share/datasets/fashion-mnist"

TestSuite(classifier, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* The accuracy on the line "test accuracy: 0.XXXX" of the program's stdout. */
static double final_accuracy(void) {
    char *out = tg_cli_text("stdout");
    const char *p = strstr(out, "\ntest accuracy: ");
    cr_assert(p, "no \"test accuracy:\" line in:\n%s", out);
    double acc = strtod(p + 16, NULL);
    free(out);
    return acc;
}

Test(classifier, one_epoch_on_fashion_mnist_reaches_pytorchs_accuracy) {
    cr_assert(access(FASHION "/train-images-idx3-ubyte.gz", R_OK) == 0,
              FASHION " is missing: `make test` installs it (scripts/need_data.sh)");
    int rc = tg_cli_run_program("build/mlp_classifier", "--data " FASHION " --epochs 1 --threads 2");
    cr_assert_eq(rc, 0, "exit %d", rc);
    double acc = final_accuracy();
    cr_expect(acc >= 0.80 && acc <= 0.87, "test accuracy %.4f outside [0.80, 0.87]", acc);
}

Test(classifier, same_seed_same_output_for_any_thread_count) {
    char *out[2];
    for (int k = 0; k < 2; k++) {
        char args[256];
        snprintf(args, sizeof args, "--data %s --epochs 2 --seed 3 --threads %d", tg_tmp("data"), k + 1);
        cr_assert_eq(tg_cli_run_program("build/mlp_classifier", args), 0);
        out[k] = tg_cli_text("stdout");
    }
    cr_expect_str_eq(out[0], out[1]);
    cr_expect(strstr(out[0], "epoch 2: train loss "), "%s", out[0]);
    free(out[0]), free(out[1]);
}

Test(classifier, bad_flags_and_data_are_named) {
    struct {
        const char *args;
        int rc;
        const char *needle;
    } cases[] = {
        {"--epochs 0", 2, "--epochs: expected an integer in [1, 100000], got \"0\""},
        {"--threads x", 2, "--threads: expected an integer"},
        {"--frobnicate 1", 2, "unknown flag \"--frobnicate\""},
        {"--epochs", 2, "--epochs needs a value"},
        {"--data /nonexistent/dir", 1, "/nonexistent/dir"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = tg_cli_run_program("build/mlp_classifier", cases[i].args);
        char *err = tg_cli_text("stderr");
        cr_expect_eq(rc, cases[i].rc, "%s: exit %d", cases[i].args, rc);
        cr_expect(strstr(err, cases[i].needle), "%s: stderr was: %s", cases[i].args, err);
        free(err);
    }
}
