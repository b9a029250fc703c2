/* vq_vae.c — the VQ-VAE (van den Oord, Vinyals & Kavukcuoglu, 2017): a
 * discrete latent. For rows x cols images (both divisible by 4; 28 x 28):
 *   encoder  enc1 Conv2d(1, 32, 4, s2, p1) + ReLU, enc2 Conv2d(32, 64, 4, s2, p1) + ReLU,
 *            enc3 Conv2d(64, D, 1)          -> z_e (B, D, 7, 7): a 7 x 7 grid of D-vectors
 *   quantise each grid vector -> its nearest of K codebook vectors (codebook.weight
 *            (K, D), squared L2), gradient straight through (models/vq.h)
 *   decoder  dec1 Conv2d(D, 64, 1) + ReLU, dec2 ConvTranspose2d(64, 32, 4, s2, p1) + ReLU,
 *            dec3 ConvTranspose2d(32, 1, 4, s2, p1) -> Bernoulli logits
 *   loss     recon + |sg(z_e) - e|^2 + commitment * |z_e - sg(e)|^2   (sums over the batch)
 * K = --codes (64), D = --code-dim (16), commitment = --commitment (0.25).
 * An image is stored as its G = 49 codes: G log2 K bits (294 for K = 64).
 *
 * The prior over codes, for sampling: one categorical per grid position,
 * code_prior (G, K), the running frequency of each code at each position
 * in the training batches (an exponential moving average, decay 0.99, from
 * uniform), kept as a buffer so checkpoints hold it. Sampling draws each
 * position's code independently from it (temperature T: p^(1/T); T = 0 the
 * most frequent code) and decodes. */
#include "models/model.h"
#include "models/vq.h"

#include <math.h>
#include <stdlib.h>

typedef struct {
    tg_conv enc1, enc2, enc3, dec1, dec2, dec3;
    tg_var *book;          /* (K, D) */
    tg_tensor *prior;      /* (G, K) code frequencies per grid position */
    int64_t rows, cols, gh, gw, K, D;
} vq_vae;

#define PRIOR_DECAY 0.99

static int vq_vae_check(const tg_model_config *c, tg_err *e) {
    const char *bad = c->rows % 4 || c->cols % 4           ? "images need both sides divisible by 4"
                      : c->codes < 2 || c->codes > 65536    ? "codes must be in [2, 65536]"
                      : c->code_dim < 1 || c->code_dim > 4096 ? "code_dim must be in [1, 4096]"
                      : !(c->commitment >= 0 && isfinite(c->commitment)) ? "commitment must be finite and >= 0"
                      : c->lik != TG_LIK_BERNOULLI || c->classes ? "Bernoulli likelihood, no classes"
                                                                 : NULL;
    if (bad) {
        tg_err_set(e, "vq-vae: %s", bad);
        return -1;
    }
    return 0;
}

static void *vq_vae_build(tg_params *ps, const tg_model_config *c, tg_rng *r) {
    vq_vae *m = malloc(sizeof *m);
    TG_CHECK(m, "vq_vae: out of memory");
    const tg_conv_args s2 = {.stride = {2, 2}, .padding = {1, 1}}, s1 = {.stride = {1, 1}};
    m->rows = c->rows, m->cols = c->cols, m->gh = c->rows / 4, m->gw = c->cols / 4, m->K = c->codes, m->D = c->code_dim;
    m->enc1 = tg_conv2d_new(ps, "enc1", 1, 32, 4, 4, s2, true, r);
    m->enc2 = tg_conv2d_new(ps, "enc2", 32, 64, 4, 4, s2, true, r);
    m->enc3 = tg_conv2d_new(ps, "enc3", 64, m->D, 1, 1, s1, true, r);
    m->book = tg_params_add(ps, "codebook.weight", TG_SHAPE(m->K, m->D));
    tg_tensor_fill_uniform(&m->book->val, -1.0 / (double)m->K, 1.0 / (double)m->K, r);   /* as common PyTorch VQ-VAEs */
    m->dec1 = tg_conv2d_new(ps, "dec1", m->D, 64, 1, 1, s1, true, r);
    m->dec2 = tg_conv_transpose2d_new(ps, "dec2", 64, 32, 4, 4, s2, true, r);
    m->dec3 = tg_conv_transpose2d_new(ps, "dec3", 32, 1, 4, 4, s2, true, r);
    m->prior = tg_params_add_buffer(ps, "code_prior", ps->dtype, TG_SHAPE(m->gh * m->gw, m->K));
    tg_tensor_fill(m->prior, 1.0 / (double)m->K);
    return m;
}

/* x (B, D_x) -> z_e as (B G, D) rows, grid positions row-major. */
static tg_var *encode_rows(tg_tape *t, const vq_vae *m, tg_var *x) {
    int64_t B = x->val.shape.d[0];
    tg_var *h = tg_reshape(t, x, TG_SHAPE(B, 1, m->rows, m->cols));
    h = tg_conv_relu(t, &m->enc1, h);
    h = tg_conv_relu(t, &m->enc2, h);
    h = tg_conv_forward(t, &m->enc3, h);                               /* (B, D, gh, gw) */
    h = tg_permute(t, h, TG_SHAPE(0, 2, 3, 1));                        /* (B, gh, gw, D) */
    return tg_reshape(t, h, TG_SHAPE(B * m->gh * m->gw, m->D));
}

/* z_q as (B G, D) rows -> logits (B, D_x). */
static tg_var *decode_rows(tg_tape *t, const vq_vae *m, tg_var *zq, int64_t B) {
    tg_var *h = tg_reshape(t, zq, TG_SHAPE(B, m->gh, m->gw, m->D));
    h = tg_permute(t, h, TG_SHAPE(0, 3, 1, 2));                        /* (B, D, gh, gw) */
    h = tg_conv_relu(t, &m->dec1, h);
    h = tg_conv_relu(t, &m->dec2, h);
    h = tg_conv_forward(t, &m->dec3, h);                               /* (B, 1, R, C) */
    return tg_reshape(t, h, TG_SHAPE(B, m->rows * m->cols));
}

/* code_prior <- decay code_prior + (1 - decay) (the batch's code frequencies). */
static void update_prior(vq_vae *m, const tg_tensor *codes, int64_t B) {
    const int64_t G = m->gh * m->gw, K = m->K;
    for (int64_t i = 0; i < G * K; i++) tg_tensor_set(m->prior, i, PRIOR_DECAY * tg_tensor_get(m->prior, i));
    for (int64_t b = 0; b < B; b++)
        for (int64_t g = 0; g < G; g++) {
            int64_t q = g * K + TG_I64P(codes)[b * G + g];
            tg_tensor_set(m->prior, q, tg_tensor_get(m->prior, q) + (1 - PRIOR_DECAY) / (double)B);
        }
}

static tg_model_out vq_vae_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    vq_vae *m = self;
    int64_t B = b->x->val.shape.d[0];
    tg_vq_out q = tg_vq_quantize(t, encode_rows(t, m, b->x), m->book);
    tg_var *recon = tg_loss_bce_logits(t, decode_rows(t, m, q.z_q, B), b->x, TG_REDUCE_SUM);
    tg_var *loss = tg_add(t, tg_add(t, recon, q.codebook), tg_mul_scalar(t, q.commitment, b->cfg->commitment));
    tg_model_out o = tg_model_out_of(loss, 3, (tg_var *[]){recon, q.codebook, q.commitment});
    o.codes = tg_reshape(t, q.codes, TG_SHAPE(B, m->gh * m->gw));
    if (b->train) update_prior(m, &o.codes->val, B);
    return o;
}

static tg_var *vq_vae_encode(tg_tape *t, void *self, tg_var *x, const tg_tensor *labels) {
    (void)labels;
    vq_vae *m = self;
    tg_vq_out q = tg_vq_quantize(t, encode_rows(t, m, x), m->book);
    return tg_reshape(t, q.codes, TG_SHAPE(x->val.shape.d[0], m->gh * m->gw));
}

static tg_var *vq_vae_decode(tg_tape *t, void *self, tg_var *codes, const tg_tensor *labels) {
    (void)labels;
    vq_vae *m = self;
    int64_t B = codes->val.shape.d[0];
    tg_var *e = tg_embedding(t, m->book, tg_reshape(t, codes, TG_SHAPE(B * m->gh * m->gw)));   /* (B G, D) */
    return decode_rows(t, m, e, B);
}

static tg_var *vq_vae_sample(tg_tape *t, void *self, int64_t n, const tg_tensor *labels, double T, tg_rng *r) {
    vq_vae *m = self;
    const int64_t G = m->gh * m->gw, K = m->K;
    tg_tensor *codes = tg_tensor_new(tg_tape_arena(t), TG_I64, TG_SHAPE(n, G));
    for (int64_t i = 0; i < n; i++)
        for (int64_t g = 0; g < G; g++) {
            int64_t best = 0;   /* the most frequent code, the first of ties */
            for (int64_t k = 1; k < K; k++)
                if (tg_tensor_get(m->prior, g * K + k) > tg_tensor_get(m->prior, g * K + best)) best = k;
            if (T > 0) {        /* p_k^(1/T), normalised, by inversion of one uniform draw */
                double total = 0, u = tg_rng_uniform(r);
                for (int64_t k = 0; k < K; k++) total += pow(tg_tensor_get(m->prior, g * K + k), 1 / T);
                double acc = 0;
                /* total underflows to 0 only for T near 0: keep the most frequent code */
                for (int64_t k = 0; total > 0 && k < K; k++) {
                    acc += pow(tg_tensor_get(m->prior, g * K + k), 1 / T) / total;
                    if (u < acc || k == K - 1) {
                        best = k;
                        break;
                    }
                }
            }
            TG_I64P(codes)[i * G + g] = best;
        }
    return vq_vae_decode(t, self, tg_leaf(t, codes, false), labels);
}

const tg_model_type tg_vq_vae_type = {
    .name = "vq-vae", .about = "the VQ-VAE: a 7x7 grid of codes from a learned codebook (--codes, --code-dim, --commitment)",
    .terms = {"recon", "codebook", "commitment"}, .check = vq_vae_check, .build = vq_vae_build, .free = free,
    .loss = vq_vae_loss, .decode = vq_vae_decode, .encode = vq_vae_encode, .sample = vq_vae_sample};
