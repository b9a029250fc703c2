/*
 * test_seed_vae.c — build/seed_vae, the reference VAE program, for one epoch
 * on a small synthetic dataset (tests/vae_cli.c): it exits 0, prints the
 * PyTorch example's lines with finite, plausible losses, and --save writes the
 * weights under the PyTorch module's names and shapes. Bad flags are refused
 * with a message naming the flag.
 *
 * The loss bounds come from the data, not from an earlier run:
 *   below: the loss of an image is its BCE plus a KL >= 0, and the BCE of
 *          targets x against any prediction is at least the entropy
 *          sum_p H(x_p) of the targets, so an average loss is at least the
 *          average entropy of the images it averages;
 *   above: logits of 0 (every pixel 1/2) and q(z|x) = p(z) cost exactly
 *          784 log 2 per image whatever the data, so a model that learnt
 *          anything in its epoch (8 Adam steps) must do better.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/checkpoint.h"
#include "tmpdir.h"
#include "vae_cli.h"

#define NTRAIN 1024   /* 8 batches of 128 */
#define NTEST 256
#define PIXELS 784

static void setup(void) {
    tg_tmpdir_setup();
    tg_cli_write_data(tg_tmp("data"), NTRAIN, NTEST);
}

TestSuite(seed_vae, .init = setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* Binary entropy in nats. */
static double entropy(double q) { return q <= 0 || q >= 1 ? 0 : -q * log(q) - (1 - q) * log1p(-q); }

/* The mean and the least over the images of an IDX file (read with stdio) of
 * sum_p H(x_p), x = pixel / 255: the least BCE they can have. */
static void image_entropy(const char *name, int n, double *mean, double *least) {
    size_t len;
    uint8_t *b = tg_slurp(tg_tmp(name), &len);
    cr_assert_eq(len, 16 + (size_t)n * PIXELS, "%s: %zu bytes", name, len);
    double sum = 0;
    *least = INFINITY;
    for (int i = 0; i < n; i++) {
        double h = 0;
        for (int p = 0; p < PIXELS; p++) h += entropy(b[16 + (size_t)i * PIXELS + p] / 255.0);
        sum += h;
        *least = fmin(*least, h);
    }
    *mean = sum / n;
    free(b);
}

/* The one line of text that starts with prefix; fails if none or several. */
static const char *line_of(const char *text, const char *prefix) {
    const char *found = NULL;
    size_t k = strlen(prefix);
    for (const char *l = text; l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        if (strncmp(l, prefix, k)) continue;
        cr_assert_null(found, "two lines start with \"%s\":\n%s", prefix, text);
        found = l;
    }
    cr_assert_not_null(found, "no line starts with \"%s\":\n%s", prefix, text);
    return found;
}

Test(seed_vae, one_epoch_prints_plausible_losses_and_saves_pytorch_names) {
    char args[1024];
    snprintf(args, sizeof args, "--data %s --epochs 1 --seed 1 --threads 2 --save %s", tg_tmp("data"),
             tg_tmp("vae.safetensors"));
    cr_assert_eq(tg_cli_run_program("build/seed_vae", args), 0, "%s", tg_cli_text("stderr"));
    char *out = tg_cli_text("stdout");
    cr_log_info("%s", out);

    char want[600];
    snprintf(want, sizeof want, "Dataset: %s (%d train, %d test images of 28x28)", tg_tmp("data"), NTRAIN, NTEST);
    cr_expect(strstr(out, want), "no \"%s\":\n%s", want, out);

    double h_train, h_train_least, h_test, h_test_least;
    image_entropy("data/train-images-idx3-ubyte", NTRAIN, &h_train, &h_train_least);
    image_entropy("data/t10k-images-idx3-ubyte", NTEST, &h_test, &h_test_least);
    const double untrained = PIXELS * log(2.0);   /* 543.4 */
    cr_log_info("entropy per image: train %.2f (least %.2f), test %.2f; 784 log 2 = %.2f", h_train, h_train_least,
                h_test, untrained);

    /* Batch 0 of 8 is the only one with a progress line: PyTorch prints every 100th. */
    long long epoch, seen, total;
    double pct, first, avg, test;
    cr_assert_eq(sscanf(line_of(out, "Train Epoch: "), "Train Epoch: %lld [%lld/%lld (%lf%%)]\tLoss: %lf", &epoch,
                        &seen, &total, &pct, &first), 5, "%s", out);
    cr_expect(epoch == 1 && seen == 0 && total == NTRAIN && pct == 0, "%s", out);
    cr_expect(isfinite(first) && first >= h_train_least, "first batch's loss per image %g, below the least "
              "entropy of an image %g", first, h_train_least);
    cr_assert_eq(sscanf(line_of(out, "====> Epoch: "), "====> Epoch: %lld Average loss: %lf", &epoch, &avg), 2, "%s",
                 out);
    cr_expect_eq(epoch, 1);
    cr_assert_eq(sscanf(line_of(out, "====> Test set loss: "), "====> Test set loss: %lf", &test), 1, "%s", out);
    cr_expect(isfinite(avg) && avg >= h_train && avg < untrained, "average training loss %g not in [%g, %g)", avg,
              h_train, untrained);
    cr_expect(isfinite(test) && test >= h_test && test < untrained, "test loss %g not in [%g, %g)", test, h_test,
              untrained);
    line_of(out, "====> Epoch 1 took ");
    snprintf(want, sizeof want, "Saved %s\n", tg_tmp("vae.safetensors"));
    cr_expect(strstr(out, want), "no \"%s\":\n%s", want, out);
    free(out);

    /* The file, through the library's reader: the names and shapes of the
     * PyTorch module the README compares with (bench/torch_vae.py, whose
     * load_state_dict takes the file), where nn.Linear(in, out) has weight
     * (out, in) and bias (out). */
    static const struct {
        const char *name;
        int ndim;
        int64_t d0, d1;
    } params[] = {
        {"fc1.weight", 2, 400, PIXELS},  {"fc1.bias", 1, 400, 0},        {"fc_mu.weight", 2, 20, 400},
        {"fc_mu.bias", 1, 20, 0},        {"fc_logvar.weight", 2, 20, 400}, {"fc_logvar.bias", 1, 20, 0},
        {"fc2.weight", 2, 400, 20},      {"fc2.bias", 1, 400, 0},        {"fc3.weight", 2, PIXELS, 400},
        {"fc3.bias", 1, PIXELS, 0},
    };
    const int n = sizeof params / sizeof *params;
    tg_safetensors st;
    tg_err e;
    cr_assert_eq(tg_safetensors_read(tg_tmp("vae.safetensors"), &st, &e), 0, "%s", e.msg);
    cr_expect_eq(st.n, n, "%d tensors, want %d", st.n, n);
    for (int i = 0; i < n; i++) {
        const tg_st_tensor *t = tg_safetensors_find(&st, params[i].name);
        cr_assert_not_null(t, "no tensor %s", params[i].name);
        tg_shape s = params[i].ndim == 2 ? TG_SHAPE(params[i].d0, params[i].d1) : TG_SHAPE(params[i].d0);
        char b1[96], b2[96];
        cr_expect(tg_shape_eq(t->tensor.shape, s), "%s: %s, want %s", params[i].name,
                  tg_shape_str(t->tensor.shape, b1), tg_shape_str(s, b2));
        cr_expect_eq(t->tensor.dtype, TG_F32, "%s: %s", params[i].name, tg_dtype_name(t->tensor.dtype));
        int64_t bad = 0, zero = 0;
        for (int64_t k = 0; k < t->tensor.numel; k++) {
            double v = tg_tensor_get(&t->tensor, k);
            bad += !isfinite(v), zero += v == 0;
        }
        cr_expect(bad == 0 && zero < t->tensor.numel, "%s: %lld non-finite, %lld zero of %lld", params[i].name,
                  (long long)bad, (long long)zero, (long long)t->tensor.numel);
    }
    tg_safetensors_free(&st);
}

Test(seed_vae, bad_flags_are_refused_naming_the_flag) {
    static const struct {
        const char *args, *message;
        int code;
    } bad[] = {
        {"--bogus 1", "seed_vae: unknown flag \"--bogus\"", 2},
        {"--epochs 0", "seed_vae: --epochs: expected an integer in [1, 100000], got \"0\"", 2},
        {"--seed x1", "seed_vae: --seed: expected an integer", 2},
        {"--data", "seed_vae: --data needs a value", 2},
        {"--save /nonexistent-dir/vae.safetensors", "seed_vae: --save /nonexistent-dir/vae.safetensors: directory "
                                                    "/nonexistent-dir is not writable", 1},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_expect_eq(tg_cli_run_program("build/seed_vae", bad[i].args), bad[i].code, "%s", bad[i].args);
        char *err = tg_cli_text("stderr");
        cr_expect(strstr(err, bad[i].message), "%s: stderr lacks \"%s\": %s", bad[i].args, bad[i].message, err);
        free(err);
    }
}
