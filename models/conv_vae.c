/* conv_vae.c — the convolutional VAE: the VAE's objective (vae.c) with
 * convolutional networks for images (PyTorch's parameter names, so its
 * state_dict loads). For rows x cols images (both divisible by 4; 28 x 28):
 *   encoder  x (B, 1, 28, 28)
 *            enc1 Conv2d(1, 32, 4, stride 2, padding 1) + ReLU   -> (B, 32, 14, 14)
 *            enc2 Conv2d(32, 64, 4, stride 2, padding 1) + ReLU  -> (B, 64, 7, 7)
 *            flatten                                             -> (B, 3136)
 *            fc1 Linear(3136, 256) + ReLU; fc_mu, fc_logvar Linear(256, L)
 *   decoder  fc2 Linear(L, 256) + ReLU; fc3 Linear(256, 3136) + ReLU -> (B, 64, 7, 7)
 *            dec1 ConvTranspose2d(64, 32, 4, stride 2, padding 1) + ReLU -> (B, 32, 14, 14)
 *            dec2 ConvTranspose2d(32, 1, 4, stride 2, padding 1)  -> (B, 1, 28, 28) Bernoulli logits
 *   loss     recon + kl, as the VAE (tg_model_elbo). */
#include "models/model.h"

#include <stdlib.h>

typedef struct {
    tg_conv enc1, enc2;
    tg_linear fc1, fc_mu, fc_logvar, fc2, fc3;
    tg_conv dec1, dec2;
    int64_t rows, cols;
} conv_vae;

#define HIDDEN 256
#define CH1 32
#define CH2 64

static int conv_vae_check(const tg_model_config *c, tg_err *e) {
    if (c->rows % 4 || c->cols % 4) {
        tg_err_set(e, "conv-vae: images of %lldx%lld, want both sides divisible by 4", (long long)c->rows,
                   (long long)c->cols);
        return -1;
    }
    if (c->lik != TG_LIK_BERNOULLI || c->classes) {
        tg_err_set(e, "conv-vae: Bernoulli likelihood, no classes");
        return -1;
    }
    return 0;
}

static void *conv_vae_build(tg_params *ps, const tg_model_config *c, tg_rng *r) {
    conv_vae *m = malloc(sizeof *m);
    TG_CHECK(m, "conv_vae: out of memory");
    const tg_conv_args s2 = {.stride = {2, 2}, .padding = {1, 1}};
    const int64_t flat = CH2 * (c->rows / 4) * (c->cols / 4);
    m->rows = c->rows, m->cols = c->cols;
    m->enc1 = tg_conv2d_new(ps, "enc1", 1, CH1, 4, 4, s2, true, r);
    m->enc2 = tg_conv2d_new(ps, "enc2", CH1, CH2, 4, 4, s2, true, r);
    m->fc1 = tg_linear_new(ps, "fc1", flat, HIDDEN, r);
    m->fc_mu = tg_linear_new(ps, "fc_mu", HIDDEN, c->latent, r);
    m->fc_logvar = tg_linear_new(ps, "fc_logvar", HIDDEN, c->latent, r);
    m->fc2 = tg_linear_new(ps, "fc2", c->latent, HIDDEN, r);
    m->fc3 = tg_linear_new(ps, "fc3", HIDDEN, flat, r);
    m->dec1 = tg_conv_transpose2d_new(ps, "dec1", CH2, CH1, 4, 4, s2, true, r);
    m->dec2 = tg_conv_transpose2d_new(ps, "dec2", CH1, 1, 4, 4, s2, true, r);
    return m;
}

static void conv_vae_posterior(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels, tg_var **mu,
                               tg_var **logvar) {
    (void)labels;
    const conv_vae *m = self;
    int64_t B = x->val.shape.d[0];
    tg_var *h = tg_reshape(t, x, TG_SHAPE(B, 1, m->rows, m->cols));
    h = tg_conv_relu(t, &m->enc1, h);                                 /* (B, 32, R/2, C/2) */
    h = tg_conv_relu(t, &m->enc2, h);                                 /* (B, 64, R/4, C/4) */
    h = tg_linear_relu(t, &m->fc1, tg_flatten(t, h, 1, 3));           /* (B, 256) */
    *mu = tg_linear_forward(t, &m->fc_mu, h);
    *logvar = tg_linear_forward(t, &m->fc_logvar, h);
}

static tg_var *conv_vae_decode(tg_tape *t, void *self, tg_var *z, const tg_tensor *labels) {
    (void)labels;
    const conv_vae *m = self;
    int64_t B = z->val.shape.d[0];
    tg_var *h = tg_linear_relu(t, &m->fc2, z);                        /* (B, 256) */
    h = tg_linear_relu(t, &m->fc3, h);                                /* (B, 64 R/4 C/4) */
    h = tg_reshape(t, h, TG_SHAPE(B, CH2, m->rows / 4, m->cols / 4));
    h = tg_conv_relu(t, &m->dec1, h);                                 /* (B, 32, R/2, C/2) */
    h = tg_conv_forward(t, &m->dec2, h);                              /* (B, 1, R, C) logits */
    return tg_reshape(t, h, TG_SHAPE(B, m->rows * m->cols));
}

static tg_model_out conv_vae_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    extern const tg_model_type tg_conv_vae_type;
    return tg_model_elbo(t, &tg_conv_vae_type, self, b);
}

const tg_model_type tg_conv_vae_type = {
    .name = "conv-vae", .about = "the convolutional VAE: conv encoder, transposed-conv decoder, recon + kl",
    .terms = {"recon", "kl"}, .check = conv_vae_check, .build = conv_vae_build, .free = free,
    .loss = conv_vae_loss, .posterior = conv_vae_posterior, .decode = conv_vae_decode};
