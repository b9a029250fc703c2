/* test_model_api.c — the model interface (models/model.h):
 *   - a model written in this file, registered with tg_model_register,
 *     trains through the library's trainer (tg_train_run) with checkpoints,
 *     resumes byte-identically, evaluates and samples: the interface is open;
 *   - every built-in model's objective, float64, against central differences
 *     of itself (tg_model_loss with the same noise each time);
 *   - iwae, conv-vae and vq-vae through `vae train`, `--resume`, `vae eval`
 *     (with --scores) and `vae sample`; their flags' range errors. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "examples/vae/evaluate.h"
#include "examples/vae/train.h"
#include "tests/tmpdir.h"
#include "tests/vae_cli.h"

TestSuite(model_api, .init = tg_cli_setup, .fini = tg_tmpdir_teardown, .timeout = 120);

/* ================================================================ a user's model */

/* The smallest VAE: one Linear to [mu, logvar], one Linear back. */
typedef struct {
    tg_linear enc, dec;
    int64_t L;
} lin_vae;

static void *lin_build(tg_params *ps, const tg_model_config *c, tg_rng *r) {
    lin_vae *m = malloc(sizeof *m);
    m->L = c->latent;
    m->enc = tg_linear_new(ps, "enc", c->rows * c->cols, 2 * c->latent, r);
    m->dec = tg_linear_new(ps, "dec", c->latent, c->rows * c->cols, r);
    return m;
}

static void lin_posterior(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels, tg_var **mu, tg_var **lv) {
    (void)labels;
    lin_vae *m = self;
    tg_var *h = tg_linear_forward(t, &m->enc, x);
    *mu = tg_narrow(t, h, 1, 0, m->L);
    *lv = tg_narrow(t, h, 1, m->L, m->L);
}

static tg_var *lin_decode(tg_tape *t, void *self, tg_var *z, const tg_tensor *labels) {
    (void)labels;
    return tg_linear_forward(t, &((lin_vae *)self)->dec, z);
}

static const tg_model_type lin_type;
static tg_model_out lin_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    return tg_model_elbo(t, &lin_type, self, b);
}

static const tg_model_type lin_type = {.name = "test-linear-vae", .about = "a test's own model",
                                       .terms = {"recon", "kl"}, .build = lin_build, .free = free,
                                       .loss = lin_loss, .posterior = lin_posterior, .decode = lin_decode};

static int train_in(const char *dir, int64_t epochs, bool resume, const tg_dataset *ds, tg_err *e) {
    tg_train_opts o = tg_train_opts_default();
    o.model = "test-linear-vae", o.epochs = epochs, o.batch = 16, o.latent = 3, o.threads = 1;
    o.out_dir = dir, o.resume = resume;
    FILE *log = fopen("/dev/null", "w");
    int rc = tg_train_run(&o, ds, log, e);
    fclose(log);
    return rc;
}

Test(model_api, a_model_from_a_test_file_trains_resumes_evaluates_and_samples) {
    tg_model_register(&lin_type);
    cr_assert_eq(tg_model_find("test-linear-vae"), &lin_type);
    cr_assert(strstr(tg_model_names(), "test-linear-vae"), "%s", tg_model_names());
    tg_dataset ds;
    tg_err e;
    cr_assert_eq(tg_dataset_load(tg_tmp("data"), &ds, &e), 0, "%s", e.msg);
    char whole[512], parts[512], p[600], q[600];
    snprintf(whole, sizeof whole, "%s", tg_tmp("whole"));
    snprintf(parts, sizeof parts, "%s", tg_tmp("parts"));
    cr_assert_eq(mkdir(whole, 0777), 0);
    cr_assert_eq(mkdir(parts, 0777), 0);
    cr_assert_eq(train_in(whole, 2, false, &ds, &e), 0, "%s", e.msg);
    cr_assert_eq(train_in(parts, 1, false, &ds, &e), 0, "%s", e.msg);
    cr_assert_eq(train_in(parts, 2, true, &ds, &e), 0, "%s", e.msg);
    const char *same[] = {"model.safetensors", "optimizer.safetensors", "reconstruction_2.png", "sample_2.png"};
    for (size_t i = 0; i < sizeof same / sizeof *same; i++) {
        snprintf(p, sizeof p, "%s/%s", whole, same[i]);
        snprintf(q, sizeof q, "%s/%s", parts, same[i]);
        cr_expect(tg_cli_same_file(p, q), "%s: 2 epochs and 1 + resume 1 differ", same[i]);
    }
    double rows[4][TG_M_COLS];
    tg_cli_check_metrics("whole", 2, 0.05, rows);
    cr_expect_lt(rows[1][TG_M_TEST], rows[0][TG_M_TEST], "the model learns: test loss %g then %g",
                 rows[0][TG_M_TEST], rows[1][TG_M_TEST]);
    /* Its parameters under its own names. */
    snprintf(p, sizeof p, "%s/model.safetensors", whole);
    tg_safetensors st;
    cr_assert_eq(tg_safetensors_read(p, &st, &e), 0, "%s", e.msg);
    cr_expect_not_null(tg_safetensors_find(&st, "enc.weight"));
    cr_expect_not_null(tg_safetensors_find(&st, "dec.bias"));
    tg_safetensors_free(&st);

    /* Evaluated and sampled through the same interface. */
    tg_run_info ri;
    tg_model m;
    cr_assert_eq(tg_run_info_load(whole, &ri, &e), 0, "%s", e.msg);
    cr_expect_str_eq(ri.o.model, "test-linear-vae");
    tg_params *ps = tg_run_model_load(whole, &ri, &m, &e);
    cr_assert_not_null(ps, "%s", e.msg);
    tg_eval_result r;
    cr_assert_eq(tg_run_evaluate(&m, &ri, &ds, 20, 1, false, NULL, &r, &e), 0, "%s", e.msg);
    double elbo = r.terms[0] + r.terms[1];
    cr_expect(fabs(r.loss - elbo) <= 1e-4 * elbo, "loss %g = recon + kl %g", r.loss, elbo);
    cr_expect(isfinite(r.nll) && r.nll < elbo + 1, "IS-NLL %g, ELBO %g", r.nll, elbo);
    cr_expect_eq(r.active_units >= 0 && r.active_units <= 3, 1);
    tg_eval_result_free(&r);
    uint8_t px[4 * 784];
    cr_expect_eq(tg_run_sample(&m, 4, -1, 1, 3, px, &e), 0, "%s", e.msg);
    tg_model_free(&m);
    tg_params_free(ps);
    tg_dataset_free(&ds);
}

/* ================================================================ gradients */

/* Loss of a built model on fixed data and noise (the rng copied each call). */
typedef struct {
    tg_model m;
    tg_tensor *x, *labels;
    tg_rng noise;
    bool train;
} case_t;

static double loss_of(tg_tape *t, case_t *c, bool backward) {
    tg_rng r = c->noise;
    tg_model_batch b = {.x = tg_leaf(t, c->x, false), .labels = c->labels, .rng = &r, .train = c->train,
                        .step = 3, .epoch = 2, .steps_per_epoch = 4, .epochs = 4};
    tg_model_out o = tg_model_loss(t, &c->m, &b);
    double v = tg_tensor_get(&o.loss->val, 0);
    if (backward) tg_backward(t, o.loss);
    tg_tape_reset(t);
    return v;
}

/* only: check the parameters whose names start with it (NULL: all). */
static void gradcheck(const char *name, tg_model_config cfg, const char *only) {
    const tg_model_type *type = tg_model_find(name);
    cr_assert_not_null(type, "%s", name);
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng init = tg_rng_seed(5);
    tg_arena *a = tg_arena_new();
    const int64_t B = 3, D = cfg.rows * cfg.cols;
    case_t c = {.noise = tg_rng_seed(9), .train = true};
    c.m = tg_model_new(type, ps, &cfg, &init);
    c.x = tg_tensor_new(a, TG_F64, TG_SHAPE(B, D));
    tg_rng dr = tg_rng_seed(2);
    for (int64_t i = 0; i < B * D; i++) tg_tensor_set(c.x, i, tg_rng_uniform(&dr));
    if (type->conditional) {
        c.labels = tg_tensor_new(a, TG_I64, TG_SHAPE(B));
        for (int64_t i = 0; i < B; i++) TG_I64P(c.labels)[i] = (i * 7) % cfg.classes;
    }
    tg_tape *t = tg_tape_new();
    tg_params_zero_grad(ps);
    loss_of(t, &c, true);
    int checked = 0;
    double worst = 0;
    for (int v = 0; v < ps->count; v++) {
        tg_var *p = ps->vars[v];
        if (only && strncmp(p->name, only, strlen(only))) continue;
        int64_t n = p->val.numel, step = n > 12 ? n / 12 : 1;   /* about 12 entries of each parameter */
        for (int64_t i = 0; i < n; i += step) {
            double x0 = tg_tensor_get(&p->val, i), h = 1e-6;
            tg_tensor_set(&p->val, i, x0 + h);
            double up = loss_of(t, &c, false);
            tg_tensor_set(&p->val, i, x0 - h);
            double dn = loss_of(t, &c, false);
            tg_tensor_set(&p->val, i, x0);
            double num = (up - dn) / (2 * h), ana = p->grad.data ? tg_tensor_get(&p->grad, i) : 0;
            double err = fabs(num - ana) / fmax(1.0, fabs(num));
            worst = fmax(worst, err);
            cr_expect(err < 1e-5, "%s: %s[%lld]: analytic %.10g, central difference %.10g", name, p->name,
                      (long long)i, ana, num);
            checked++;
        }
    }
    cr_expect_gt(checked, 20, "%s: %d entries checked", name, checked);
    tg_tape_free(t);
    tg_model_free(&c.m);
    tg_params_free(ps);
    tg_arena_free(a);
}

static tg_model_config small(int64_t rows, int64_t cols) {
    tg_model_config c = {.rows = rows, .cols = cols, .n_hidden = 1, .hidden = {5}, .latent = 3,
                         .lik = TG_LIK_BERNOULLI, .prior = TG_PRIOR_STANDARD, .beta = 4, .anneal = TG_KL_LINEAR,
                         .anneal_epochs = 4, .cycles = 2, .ratio = 0.5, .k = 4, .codes = 5, .code_dim = 3,
                         .commitment = 0.25};
    return c;
}

Test(model_api, gradients_of_every_built_in_objective) {
    gradcheck("vae", small(3, 4), NULL);
    gradcheck("beta-vae", small(3, 4), NULL);
    gradcheck("annealed-vae", small(3, 4), NULL);
    tg_model_config c = small(3, 4);
    c.classes = 3, c.prior = TG_PRIOR_LEARNED;
    gradcheck("cvae", c, NULL);
    gradcheck("iwae", small(3, 4), NULL);
    gradcheck("conv-vae", small(8, 4), NULL);
    /* The VQ-VAE's encoder and codebook get the straight-through gradient, by
     * design not the loss's derivative (the codes are piecewise constant and
     * z_q's gradient skips the quantiser): its decoder is checked here, the
     * rest against PyTorch's autograd (tests/test_vq.c, models/vq.c). */
    gradcheck("vq-vae", small(8, 8), "dec");
}

/* The weights the objectives use, read off their loss: beta 4 for the
 * beta-VAE, min(1, 2 / 4) at epoch 2 for the annealed VAE, 1 at evaluation. */
Test(model_api, beta_and_annealing_weigh_the_kl_and_evaluation_reports_the_elbo) {
    const char *names[] = {"vae", "beta-vae", "annealed-vae"};
    const double want[] = {1, 4, 0.5};
    for (int k = 0; k < 3; k++)
        for (int train = 0; train < 2; train++) {
            tg_params *ps = tg_params_new(TG_F64);
            tg_rng init = tg_rng_seed(5), noise = tg_rng_seed(1);
            tg_model_config cfg = small(3, 4);
            tg_model m = tg_model_new(tg_model_find(names[k]), ps, &cfg, &init);
            tg_tape *t = tg_tape_new();
            tg_tensor *x = tg_tensor_new(tg_tape_arena(t), TG_F64, TG_SHAPE(2, 12));
            for (int64_t i = 0; i < 24; i++) tg_tensor_set(x, i, (double)(i % 5) / 4);
            tg_model_batch b = {.x = tg_leaf(t, x, false), .rng = &noise, .train = train, .epoch = 2,
                                .steps_per_epoch = 4, .epochs = 4};
            tg_model_out o = tg_model_loss(t, &m, &b);
            double w = train ? want[k] : 1, recon = tg_item(o.term[0]), kl = tg_item(o.term[1]);
            cr_expect(fabs(tg_item(o.loss) - (recon + w * kl)) < 1e-9 * tg_item(o.loss), "%s train %d: loss %.12g, recon %.12g + %g kl %.12g",
                      names[k], train, tg_item(o.loss), recon, w, kl);
            cr_expect_eq(o.kl_weight, w, "%s train %d: kl_weight %g", names[k], train, o.kl_weight);
            tg_tape_free(t);
            tg_model_free(&m);
            tg_params_free(ps);
        }
}

/* ================================================================ through the program */

#define TINY "--epochs 2 --batch 16 --latent 4 --threads 1"
/* Each model's own flags. */
static const char *own(const char *model) {
    return !strcmp(model, "iwae") ? "--hidden 32 --k 3" : !strcmp(model, "vq-vae") ? "--codes 8 --code-dim 4"
           : !strcmp(model, "conv-vae") ? "" : "--hidden 32";
}

static int vae(const char *fmt, const char *a1, const char *a2) {
    char a[2048];
    snprintf(a, sizeof a, fmt, a1, a2);
    return tg_cli_run(a);
}

Test(model_api, iwae_conv_vae_and_vq_vae_train_resume_evaluate_and_sample) {
    const char *models[] = {"iwae", "conv-vae", "vq-vae"};
    for (int k = 0; k < 3; k++) {
        char whole[64], part[64], args[512], p[600], q[600];
        snprintf(whole, sizeof whole, "%s_2", models[k]);
        snprintf(part, sizeof part, "%s_1", models[k]);
        snprintf(args, sizeof args, "--model %s %s " TINY, models[k], own(models[k]));
        char a[2048];
        snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp("data"), tg_tmp(whole), args);
        cr_assert_eq(tg_cli_run(a), 0, "%s: %s", a, tg_cli_text("stderr"));
        snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp("data"), tg_tmp(part), args);
        char *e1 = strstr(a, "--epochs 2");
        e1[9] = '1';
        cr_assert_eq(tg_cli_run(a), 0, "%s: %s", a, tg_cli_text("stderr"));
        cr_assert_eq(vae("train --resume %s --epochs 2%s", tg_tmp(part), ""), 0, "%s", tg_cli_text("stderr"));
        const char *files[] = {"model.safetensors", "optimizer.safetensors", "metrics.csv", "sample_2.png",
                               "reconstruction_2.png"};
        for (size_t i = 0; i < 5; i++) {
            snprintf(p, sizeof p, "%s/%s", tg_tmp(whole), files[i]);
            snprintf(q, sizeof q, "%s/%s", tg_tmp(part), files[i]);
            if (i == 2) continue;   /* metrics.csv holds seconds */
            cr_expect(tg_cli_same_file(p, q), "%s: %s differs after a resume", models[k], files[i]);
        }
        /* 2 threads: the same bytes */
        char t2[64];
        snprintf(t2, sizeof t2, "%s_t2", models[k]);
        snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp("data"), tg_tmp(t2), args);
        char *th = strstr(a, "--threads 1");
        th[10] = '2';
        cr_assert_eq(tg_cli_run(a), 0, "%s: %s", a, tg_cli_text("stderr"));
        snprintf(p, sizeof p, "%s/model.safetensors", tg_tmp(whole));
        snprintf(q, sizeof q, "%s/model.safetensors", tg_tmp(t2));
        cr_expect(tg_cli_same_file(p, q), "%s: --threads 1 and --threads 2 give different models", models[k]);
        /* eval: the model's own figures */
        char *text = NULL;
        tg_json *doc = tg_cli_eval(whole, "--iw 10", &text);
        cr_assert_not_null(doc, "%s eval: %s", models[k], text);
        cr_expect_str_eq(tg_json_as_string(tg_json_get(doc, "model")), models[k]);
        if (k < 2) {
            cr_expect_not_null(tg_json_get(doc, "nll"), "%s", text);
            cr_expect_not_null(tg_json_get(doc, "elbo"), "%s", text);
        } else {
            double used, bits;
            tg_json_as_double(tg_json_get(doc, "codes_used"), &used);
            tg_json_as_double(tg_json_get(doc, "bits_per_image"), &bits);
            cr_expect(used >= 1 && used <= 8, "codes used %g: %s", used, text);
            cr_expect_eq(bits, 49 * 3, "49 positions of 8 codes: %g bits", bits);
            cr_expect_not_null(tg_json_get(doc, "commitment"), "%s", text);
            cr_expect_null(tg_json_get(doc, "nll"), "a VQ-VAE has no importance-sampled nll: %s", text);
        }
        tg_json_free(doc);
        free(text);
        snprintf(p, sizeof p, "%s/s.png", tg_tmp(whole));
        cr_expect_eq(vae("sample --run %s --n 5 --out %s", tg_tmp(whole), p), 0, "%s", tg_cli_text("stderr"));
        cr_expect_eq(access(p, F_OK), 0, "%s sample wrote nothing", models[k]);
    }
}

/* Anomaly scores: one row per test image with its label; with --iw they are
 * the per-image IS-NLL whose mean eval reports as nll. */
Test(model_api, eval_scores_are_per_image_and_average_to_the_reported_figure) {
    char a[2048];
    snprintf(a, sizeof a, "train --data %s --out %s --model vae --hidden 32 " TINY, tg_tmp("data"), tg_tmp("v"));
    cr_assert_eq(tg_cli_run(a), 0, "%s", tg_cli_text("stderr"));
    for (int iw = 0; iw < 2; iw++) {
        char *text = NULL, args[700];
        snprintf(args, sizeof args, "%s--scores %s", iw ? "--iw 20 " : "", tg_tmp("scores.csv"));
        tg_json *doc = tg_cli_eval("v", args, &text);
        cr_assert_not_null(doc, "%s", text);
        double want;
        tg_json_as_double(tg_json_get(doc, iw ? "nll" : "elbo"), &want);
        FILE *f = fopen(tg_tmp("scores.csv"), "r");
        cr_assert_not_null(f);
        char line[256];
        cr_assert_not_null(fgets(line, sizeof line, f));
        cr_expect_str_eq(line, "index,label,score\n");
        int n = 0, idx, lab;
        double s, sum = 0;
        while (fscanf(f, "%d,%d,%lf\n", &idx, &lab, &s) == 3) {
            cr_expect_eq(idx, n);
            cr_expect_eq(lab, n % 10, "row %d: label %d (the synthetic test set's are i %% 10)", n, lab);
            sum += s, n++;
        }
        fclose(f);
        cr_expect_eq(n, TG_CLI_NTEST, "%d rows", n);
        /* With --iw the same numbers; without, each image's own z draw: within the noise. */
        double tol = iw ? 1e-6 * fabs(want) : 0.05 * fabs(want);
        cr_expect(fabs(sum / n - want) <= tol, "mean score %.9g vs %s %.9g", sum / n, iw ? "nll" : "elbo", want);
        if (iw) {
            /* Row 0 is test image 0's own: its 20 draws are the first of the stream seeded 1 + 1. */
            tg_run_info ri;
            tg_model m;
            tg_err e;
            cr_assert_eq(tg_run_info_load(tg_tmp("v"), &ri, &e), 0, "%s", e.msg);
            tg_params *ps = tg_run_model_load(tg_tmp("v"), &ri, &m, &e);
            cr_assert_not_null(ps, "%s", e.msg);
            tg_dataset ds;
            cr_assert_eq(tg_dataset_load(tg_tmp("data"), &ds, &e), 0, "%s", e.msg);
            tg_arena *a = tg_arena_new();
            tg_tensor *x0 = tg_tensor_new(a, TG_F32, TG_SHAPE(1, 784));
            for (int d = 0; d < 784; d++) TG_F32P(x0)[d] = (float)ds.test_x.pixels[d] / 255.0f;
            tg_rng r = tg_rng_seed(2);
            double lp;
            tg_model_iw_logpx(&m, x0, NULL, 20, 0, &r, &lp);
            f = fopen(tg_tmp("scores.csv"), "r");
            cr_assert(fgets(line, sizeof line, f) && fscanf(f, "%d,%d,%lf\n", &idx, &lab, &s) == 3);
            fclose(f);
            cr_expect(fabs(s + lp) <= 1e-5 * fabs(lp), "image 0: score %.9g, its -log p(x) %.9g", s, -lp);
            tg_arena_free(a);
            tg_dataset_free(&ds);
            tg_model_free(&m);
            tg_params_free(ps);
        }
        tg_json_free(doc);
        free(text);
    }
}

Test(model_api, the_new_flags_refuse_values_out_of_range) {
    const struct {
        const char *args, *flag;
    } cases[] = {
        {"--model iwae --k 0", "--k"},           {"--model iwae --k 100001", "--k"},
        {"--model vq-vae --codes 1", "--codes"}, {"--model vq-vae --code-dim 0", "--code-dim"},
        {"--model vq-vae --commitment -1", "--commitment"}, {"--model nope", "--model"},
        {"--model iwae --k x", "--k"},
        /* flags the model does not read */
        {"--model vae --k 3", "--k"},                {"--model vae --beta 4", "--beta"},
        {"--model iwae --codes 8", "--codes"},       {"--model conv-vae --hidden 64", "--hidden"},
        {"--model vae --commitment 1", "--commitment"}, {"--beta 2", "--beta"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char a[1024];
        snprintf(a, sizeof a, "train --data %s --out %s %s", tg_tmp("data"), tg_tmp("bad"), cases[i].args);
        int rc = tg_cli_run(a);
        char *err = tg_cli_text("stderr");
        cr_expect_eq(rc, 2, "%s: exit %d (%s)", cases[i].args, rc, err);
        cr_expect(strstr(err, cases[i].flag), "%s: message does not name %s: %s", cases[i].args, cases[i].flag, err);
        free(err);
        cr_expect(access(tg_tmp("bad"), F_OK) != 0, "%s wrote %s", cases[i].args, tg_tmp("bad"));
    }
}

/* The VQ-VAE's prior: a code_prior that puts all mass on code (g * 2) % K
 * at position g samples exactly those codes (at T = 1 and T = 0), position
 * by position in the grid's row-major order. */
Test(model_api, vq_vae_samples_the_codes_its_prior_holds) {
    tg_params *ps = tg_params_new(TG_F64);
    tg_rng r = tg_rng_seed(3);
    tg_model_config c = {.rows = 8, .cols = 12, .codes = 5, .code_dim = 3, .commitment = 0.25,
                         .lik = TG_LIK_BERNOULLI};
    tg_model m = tg_model_new(tg_model_find("vq-vae"), ps, &c, &r);
    tg_tensor *prior = tg_params_find_buffer(ps, "code_prior");
    cr_assert_not_null(prior);
    const int64_t G = 2 * 3, K = 5;
    cr_assert_eq(prior->numel, G * K, "code_prior is (G, K) = (6, 5): %lld values", (long long)prior->numel);
    for (int64_t g = 0; g < G; g++)
        for (int64_t k = 0; k < K; k++) tg_tensor_set(prior, g * K + k, k == (g * 2) % K ? 1.0 : 0.0);
    tg_tape *t = tg_tape_new();
    tg_no_grad(t);
    tg_tensor *codes = tg_tensor_new(tg_tape_arena(t), TG_I64, TG_SHAPE(2, G));
    for (int64_t i = 0; i < 2 * G; i++) TG_I64P(codes)[i] = ((i % G) * 2) % K;
    tg_var *want = tg_model_decode(t, &m, tg_leaf(t, codes, false), NULL);
    for (int T = 0; T < 2; T++) {
        tg_var *got = tg_model_sample(t, &m, 2, NULL, T, &r);
        cr_assert_eq(got->val.numel, want->val.numel);
        for (int64_t i = 0; i < want->val.numel; i++)
            cr_expect_eq(tg_tensor_get(&got->val, i), tg_tensor_get(&want->val, i), "T %d: pixel %lld", T,
                         (long long)i);
    }
    tg_tape_free(t);
    tg_model_free(&m);
    tg_params_free(ps);
}
