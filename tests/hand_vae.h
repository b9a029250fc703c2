/* hand_vae.h — a `vae train` run recomputed by hand for the tests, apart from
 * the library's model, ops and trainer: the network in plain double loops
 * from the tensors of model.safetensors, the documented binarisation, and
 * the images the run draws (reconstruction_<e>.png, sample_<e>.png, `vae
 * sample`).
 *
 * The network (models/parts.h), Linear(x) = x W^T + b with W (out, in):
 * encoder [x, onehot(y)] -> ReLU hidden layers -> mu, logvar heads; decoder
 * [z, onehot(y)] -> ReLU hidden layers -> logits (Bernoulli) or means
 * (Gaussian); the learned prior [mu_p, logvar_p] = Linear(onehot(y)). Sizes
 * come from the tensors' shapes: D from the output layer, K = fc1's inputs
 * minus D, L from fc_mu. Inputs are pixels / 255 in float, as the batcher
 * gives them. The binary computes in float32, so a pixel it draws may differ
 * from these by one level at a rounding edge. */
#ifndef TG_TEST_HAND_VAE_H
#define TG_TEST_HAND_VAE_H

#include <stdbool.h>
#include <stdint.h>

#include "data/data.h"
#include "examples/vae/train.h"

typedef struct {
    const float *w, *b;   /* (out, in), (out); w NULL if absent */
    int64_t in, out;
} tg_hand_linear;

typedef struct {
    int64_t D, L, K, nh;
    tg_hand_linear enc[TG_VAE_MAX_HIDDEN], mu, logvar, dec[TG_VAE_MAX_HIDDEN], out, prior;
    bool gaussian;        /* decoder gives means, not logits */
    void *file;           /* the safetensors file holding the weights */
} tg_hand_vae;

/* The settings of a run's config.json that the hand computation needs, read
 * with the JSON reader alone. */
typedef struct {
    uint64_t seed;
    tg_binarize binarize;
    bool gaussian;
    int64_t classes;
    char data[1024];
} tg_hand_config;

void tg_hand_config_load(const char *run_dir, tg_hand_config *c);

/* run_dir/model.safetensors, and the likelihood from run_dir/config.json. */
void tg_hand_vae_load(const char *run_dir, tg_hand_vae *m);
void tg_hand_vae_free(tg_hand_vae *m);

/* mu and logvar (L) of q(z | x, y) for pixels px (D); y < 0 without labels. */
void tg_hand_vae_encode(const tg_hand_vae *m, const uint8_t *px, int y, double *mu, double *logvar);
/* The image (D bytes) decoded from z (L): sigmoid of the logits or the means,
 * quantised as tg_png_pixel_from_f32. */
void tg_hand_vae_image(const tg_hand_vae *m, const double *z, int y, uint8_t *out);
/* n images decoded from z = mu_p(y_i) + T exp(logvar_p(y_i) / 2) eps_i, eps
 * (n, L) the float32 normals of a generator seeded seed drawn row by row, as
 * tg_reparam_sample draws them; mu_p = logvar_p = 0 for the standard prior
 * (or when m->prior.w is NULL). labels (n) or NULL. */
void tg_hand_vae_sample(const tg_hand_vae *m, int64_t n, const int *labels, double T, uint64_t seed, uint8_t *out);

/* The documented binarisation of a run seeded seed (examples/vae/train.h): one
 * generator seeded seed + 3, one uniform u per pixel in row-major order, the
 * pixel p becoming 255 if u < p / 255 else 0; the training set's draws first
 * (static), then the test set's (static and dynamic). train_out may be NULL
 * (its draws are still made); for TG_BINARIZE_NONE both are copies. */
void tg_hand_binarize(tg_binarize mode, uint64_t seed, const tg_images *train, const tg_images *test,
                      uint8_t *train_out, uint8_t *test_out);

/* Pixels of a and b further apart than one level; *same counts equal ones. */
int64_t tg_hand_far_pixels(const uint8_t *a, const uint8_t *b, int64_t n, int64_t *same);
/* Expects got and want (np pixels) within one level of each other, and at
 * least 99% of them equal; what names them in messages. */
void tg_hand_expect_close(const char *what, const uint8_t *got, const uint8_t *want, int64_t np);

/* Checks epoch e's reconstruction_<e>.png and sample_<e>.png of the run in
 * run_dir, whose model.safetensors must be that epoch's, against the hand
 * computation: the reconstruction grid (8 tiles a row, padding 2) holds the
 * first 8 test images as the model saw them (binarised as above) exactly,
 * above sigmoid(decoder(mu)) of them (z = mu); the sample grid holds 64
 * decoded prior samples (a CVAE: 80, 8 of class i / 8 on row i), eps from a
 * generator seeded seed + 4. Decoded pixels may differ by one level (float32
 * rounding), and at least 99% must be equal. */
void tg_hand_check_images(const char *run_dir, int64_t epoch);

#endif
