/*
 * my_model.c — a model written outside the library, registered with
 * tg_model_register and trained, evaluated and sampled by the library's own
 * trainer and evaluator (examples/vae/), as docs/new_model.md walks through.
 *
 * The model, "free-bits-vae": the VAE's MLP (fc1, fc_mu, fc_logvar, fc2, fc3,
 * PyTorch's names) trained with free bits (Kingma et al., 2016): each latent
 * dimension's KL, summed over the batch, counts for at least FREE_NATS per
 * image, so the encoder gains nothing from squeezing a dimension's KL below
 * that and fewer units collapse to the prior:
 *     loss  = recon + sum_l max(kl_l, B FREE_NATS)   (training)
 *     loss  = recon + kl                             (evaluation: the negative ELBO)
 *     terms   recon, kl (the true KL, never clamped)
 *
 *     build/my_model [DATA_DIR [OUT_DIR]]
 *
 * DATA_DIR defaults to the default dataset (data/mnist, else Fashion-MNIST),
 * OUT_DIR to runs/my_model; an existing OUT_DIR is left alone and the run goes
 * to OUT_DIR-2, -3, ... instead. Trains one epoch, then prints the test-set
 * figures and writes samples.png into the run's directory.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "examples/vae/evaluate.h"
#include "examples/vae/run_dir.h"
#include "examples/vae/train.h"
#include "io/png.h"

/* ---------------------------------------------------------------- the model */

#define FREE_NATS 0.25   /* per image and latent dimension */

typedef struct {
    tg_linear fc1, fc_mu, fc_logvar, fc2, fc3;
} free_bits_vae;

/* D -> hidden[0] -> L, and back; cfg->hidden and cfg->latent come from the
 * trainer's options (o.hidden, o.latent). */
static void *fb_build(tg_params *ps, const tg_model_config *c, tg_rng *r) {
    free_bits_vae *m = malloc(sizeof *m);
    TG_CHECK(m, "free-bits-vae: out of memory");
    const int64_t D = c->rows * c->cols, H = c->hidden[0], L = c->latent;
    m->fc1 = tg_linear_new(ps, "fc1", D, H, r);
    m->fc_mu = tg_linear_new(ps, "fc_mu", H, L, r);
    m->fc_logvar = tg_linear_new(ps, "fc_logvar", H, L, r);
    m->fc2 = tg_linear_new(ps, "fc2", L, H, r);
    m->fc3 = tg_linear_new(ps, "fc3", H, D, r);
    return m;
}

/* q(z | x) = N(mu, exp(logvar)): x (B, D) -> mu, logvar (B, L). */
static void fb_posterior(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels, tg_var **mu,
                         tg_var **logvar) {
    (void)labels;
    const free_bits_vae *m = self;
    tg_var *h = tg_linear_relu(t, &m->fc1, x);                                    /* (B, H) */
    *mu = tg_linear_forward(t, &m->fc_mu, h);                                     /* (B, L) */
    *logvar = tg_linear_forward(t, &m->fc_logvar, h);                             /* (B, L) */
}

/* z (B, L) -> Bernoulli logits (B, D). */
static tg_var *fb_decode(tg_tape *t, void *self, tg_var *z, const tg_tensor *labels) {
    (void)labels;
    const free_bits_vae *m = self;
    return tg_linear_forward(t, &m->fc3, tg_linear_relu(t, &m->fc2, z));
}

static tg_model_out fb_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    const double B = (double)b->x->val.shape.d[0];
    tg_var *mu, *logvar;
    fb_posterior(t, self, b->x, b->labels, &mu, &logvar);
    tg_var *z = tg_reparam_sample(t, mu, logvar, b->rng);                         /* (B, L) */
    tg_var *recon = tg_loss_bce_logits(t, fb_decode(t, self, z, b->labels), b->x, TG_REDUCE_SUM);
    tg_var *kl_dim = tg_sum_axis(t, tg_kl_diag_normal(t, mu, logvar, NULL, NULL), 0, false);   /* (L) */
    tg_var *kl = tg_sum(t, kl_dim);
    tg_var *kl_used = b->train ? tg_sum(t, tg_clamp(t, kl_dim, B * FREE_NATS, INFINITY)) : kl;
    tg_model_out o = tg_model_out_of(tg_add(t, recon, kl_used), 2, (tg_var *[]){recon, kl});
    o.mean = mu, o.kl_per_dim = kl_dim;   /* for the evaluator's active units and KL per dimension */
    return o;
}

static int fb_check(const tg_model_config *c, tg_err *e) {
    if (c->n_hidden != 1 || c->lik != TG_LIK_BERNOULLI || c->classes) {
        tg_err_set(e, "free-bits-vae: one hidden layer, Bernoulli likelihood, no classes");
        return -1;
    }
    return 0;
}

static const tg_model_type free_bits_vae_type = {
    .name = "free-bits-vae", .about = "the VAE's MLP trained with free bits: each KL dimension counts at least 0.25 nats",
    .terms = {"recon", "kl"}, .check = fb_check, .build = fb_build, .free = free, .loss = fb_loss,
    .posterior = fb_posterior, .decode = fb_decode};

/* ---------------------------------------------------------------- training it */

int main(int argc, char **argv) {
    const char *data = argc > 1 ? argv[1] : tg_dataset_default_dir(), *out = argc > 2 ? argv[2] : "runs/my_model";
    tg_model_register(&free_bits_vae_type);   /* the trainer and evaluator now know "free-bits-vae" */

    tg_err e;
    tg_dataset ds;
    if (!data) {
        tg_dataset_print_help(stderr);
        return 1;
    }
    if (tg_dataset_load(data, &ds, &e) != 0) {
        fprintf(stderr, "my_model: %s\n", e.msg);
        return 1;
    }

    /* One epoch with the trainer of `vae train`: the files it writes are a
     * run's (config.json, metrics.csv, model.safetensors, ...). */
    tg_train_opts o = tg_train_opts_default();
    o.model = "free-bits-vae", o.epochs = 1, o.n_hidden = 1, o.hidden[0] = 200, o.latent = 10;
    o.data_dir = data;
    tg_run_dir d;
    if (tg_run_dir_open(&d, out, TG_RUN_DIR_UNIQUE, &e) != 0) {
        fprintf(stderr, "my_model: %s\n", e.msg);
        tg_dataset_free(&ds);
        return 1;
    }
    char dir[sizeof d.path];
    snprintf(dir, sizeof dir, "%s", d.path);
    printf("training %s in %s\n", o.model, dir);
    o.out_dir = dir;
    int rc = tg_train_run(&o, &ds, stdout, &e);
    tg_run_dir_close(&d, rc != 0);
    if (rc != 0) {
        fprintf(stderr, "my_model: %s\n", e.msg);
        tg_dataset_free(&ds);
        return 1;
    }

    /* The run read back, as `vae eval` and `vae sample` would. */
    tg_run_info ri;
    tg_model m;
    tg_params *ps = NULL;
    tg_eval_result r;
    uint8_t *px = NULL;
    char path[4200];
    rc = 1;
    if (tg_run_info_load(dir, &ri, &e) != 0 || !(ps = tg_run_model_load(dir, &ri, &m, &e))) goto fail;
    if (tg_run_evaluate(&m, &ri, &ds, 50, 1, false, NULL, &r, &e) != 0) goto fail_model;
    printf("test: loss %.2f  recon %.2f  kl %.2f  nll %.2f (%lld importance samples)  active units %lld of %lld\n",
           r.loss, r.terms[0], r.terms[1], r.nll, (long long)r.iw_samples, (long long)r.active_units,
           (long long)r.latent);
    tg_eval_result_free(&r);
    const int64_t n = 64, D = ri.rows * ri.cols;
    if (!(px = malloc((size_t)(n * D)))) {
        tg_err_set(&e, "out of memory");
        goto fail_model;
    }
    snprintf(path, sizeof path, "%s/samples.png", dir);
    if (tg_run_sample(&m, n, -1, 1.0, 7, px, &e) != 0 ||
        tg_png_write_grid(path, px, n, ri.rows, ri.cols, 8, 2, &e) != 0)
        goto fail_model;
    printf("wrote %s\n", path);
    rc = 0;
fail_model:
    free(px);
    tg_model_free(&m);
    tg_params_free(ps);
fail:
    if (rc != 0) fprintf(stderr, "my_model: %s\n", e.msg);
    tg_dataset_free(&ds);
    return rc;
}
