/*
 * evaluate.h — a finished run of `vae train` (examples/vae/train.h) read back:
 * the model rebuilt from DIR/config.json with DIR/model.safetensors loaded,
 * evaluated on the test set, sampled from its prior, its latent drawn
 * (traversals, interpolations, the 2-D manifold), or its codes written to a
 * file and decoded back. Used by `vae eval`, `vae sample`, `vae encode` and
 * `vae decode` (examples/vae/main.c).
 *
 *     tg_run_info ri;
 *     tg_model m;
 *     tg_err err;
 *     if (tg_run_info_load("runs/vae", &ri, &err) != 0) ...          // "runs/vae/config.json: ..."
 *     tg_params *ps = tg_run_model_load("runs/vae", &ri, &m, &err);   // NULL on error
 *     tg_eval_result r;
 *     tg_run_evaluate(&m, &ri, &ds, 1000, 1, false, NULL, &r, &err);
 *
 * Errors are one message naming the file and the problem.
 */
#ifndef TG_VAE_EVALUATE_H
#define TG_VAE_EVALUATE_H

#include "examples/vae/train.h"
#include "io/json.h"

/* Builds the model of ri (config.json, tg_run_info_load in examples/vae/train.h)
 * into a new float32 tg_params and loads dir/model.safetensors into it: it
 * must be of this run (its "config" metadata equal to config.json's settings
 * but the epochs), of the model's shapes (a mismatch names config.json), and
 * finite. Returns the parameters (free with tg_params_free, after
 * tg_model_free(m)), or NULL with the message. */
tg_params *tg_run_model_load(const char *dir, const tg_run_info *ri, tg_model *m, tg_err *e);

/* The test set as the run's trainer saw it: binarised with the generator
 * seeded seed + 3 (after the training set for static binarisation), or the
 * gray images. *out is malloc'd (free with tg_images_free). 0, or -1. */
int tg_run_test_images(const tg_run_info *ri, const tg_dataset *ds, tg_images *out, tg_err *e);

/* Test-set figures, in nats per image. */
typedef struct {
    int64_t images, iw_samples, latent;
    const tg_model_type *type;
    double loss;          /* the model's test objective (for the VAEs recon + kl, the negative ELBO
                             with one z sample; the IWAE's k-sample bound; the VQ-VAE's total) */
    int n_terms;
    double terms[TG_MODEL_MAX_TERMS];   /* the model's terms, type->terms names them */
    double nll;           /* Gaussian latent: -log p(x) importance-sampled with iw_samples samples */
    int64_t active_units; /* Gaussian latent: dims whose variance of E_q[z] over the test set > 0.01 */
    double *kl_per_dim;   /* (latent) averaged per image, when the model reports it; else NULL */
    int64_t codes, codes_used;   /* discrete codes: codebook size, distinct codes in the test set */
    double perplexity;    /* exp(entropy) of the test set's code frequencies */
    double bits;          /* bits per image: grid positions x log2(codes) */
    double *scores;       /* (images) per-image anomaly score when asked for: the model's
                             objective of the image alone, or with iw the IS-NLL; else NULL */
    uint8_t *labels;      /* (images) the images' labels with scores */
} tg_eval_result;

/* Evaluates m on the run's test set (tg_run_test_images); ds's images must be
 * of the run's size (tg_run_check_data). z samples come from a generator
 * seeded seed, the importance samples from seed + 1 (iw_samples 0: no nll);
 * results do not depend on the thread count. scores: also one score per
 * image. progress, if not NULL, gets a line per batch. Returns 0, or -1 with
 * the message. */
int tg_run_evaluate(const tg_model *m, const tg_run_info *ri, const tg_dataset *ds, int64_t iw_samples,
                    uint64_t seed, bool scores, FILE *progress, tg_eval_result *r, tg_err *e);
void tg_eval_result_free(tg_eval_result *r);

/* Writes r's scores as CSV "index,label,score" (one row per test image),
 * atomically. 0, or -1 with the message. */
int tg_eval_scores_write(const tg_eval_result *r, const char *path, tg_err *e);

/* r as one JSON object in w (tg_jsonw_init'ed by the call): model, loss, each
 * term by name, elbo (recon + kl) when the model has both; for a Gaussian
 * latent nll, active_units, kl_per_dim; for codes codes, codes_used,
 * perplexity, bits_per_image, bytes_per_image; iw_samples, images. NULL if w failed. */
const char *tg_eval_result_json(const tg_eval_result *r, tg_jsonw *w);

/* n images (n, D) in [0, 1] drawn from the model's prior at temperature T
 * (tg_model_sample: T = 1 the prior itself, T = 0 its mean or most likely
 * codes, the same images for every seed) from a generator seeded seed.
 * Conditional: label >= 0 gives every image that class, label < 0 class
 * i % classes to image i. Quantised as tg_png_pixel_from_f32 into out
 * (n * D bytes). Returns 0, or -1 with the message if a decoded value is not
 * finite (an overflowing temperature). */
int tg_run_sample(const tg_model *m, int64_t n, int label, double temperature, uint64_t seed, uint8_t *out,
                  tg_err *e);

/* ---------------------------------------------------------------- pictures of the latent
 * For a Gaussian latent (`vae sample --traverse | --interpolate | --manifold`).
 * Each decodes its z (n, L) in chunks with tg_model_decode and tg_model_pixels,
 * quantised as tg_png_pixel_from_f32 into out (n * D bytes, image by image in
 * the picture's row-major order), and returns 0, or -1 with the message if a
 * decoded value is not finite. */

/* The posterior mean mu (L) of test image i of x (pixels / 255, as the
 * trainer feeds them); label its class for a conditional model, else ignored. */
void tg_run_posterior_mean(const tg_model *m, const tg_images *x, int64_t i, int label, float *mu);

/* A latent traversal (Higgins et al., 2017): L rows of cols >= 2 images, row
 * l decoding z = mu but z_l = -3 + 6 j / (cols - 1) in column j (the middle
 * column of an odd cols: z_l = 0). label: the class of every image (a
 * conditional model), else ignored. out: L * cols * D bytes. */
int tg_run_traverse(const tg_model *m, const float *mu, int label, int64_t cols, uint8_t *out, tg_err *e);

/* steps >= 2 images decoding z = (1 - t) mu_a + t mu_b, t = k / (steps - 1)
 * for image k: the first decodes mu_a, the last mu_b. A conditional model
 * decodes with label_a while t < 1/2, then label_b. out: steps * D bytes. */
int tg_run_interpolate(const tg_model *m, const float *mu_a, int label_a, const float *mu_b, int label_b,
                       int64_t steps, uint8_t *out, tg_err *e);

/* The 2-D latent manifold (Kingma & Welling, 2014, figure 4), for L = 2: an
 * n x n grid, the image at row i, column j decoding z = mu_p + sigma_p (q_j,
 * q_i), q_k = Phi^-1((k + 1/2) / n) the standard normal's quantiles, so z_1
 * grows to the right and z_2 downwards. mu_p and sigma_p are the prior's: 0
 * and 1 for N(0, I), so z = (q_j, q_i); p(z | y = label) for a CVAE with a
 * learned prior. out: n * n * D bytes. */
int tg_run_manifold(const tg_model *m, int64_t n, int label, uint8_t *out, tg_err *e);

/* Phi^-1(p), the standard normal's quantile, for 0 < p < 1 (Acklam's rational
 * approximation polished by one Halley step on erfc: about 1e-15 relative). */
double tg_normal_quantile(double p);

/* ---------------------------------------------------------------- codes
 * For a model with discrete codes (the VQ-VAE: `vae encode`, `vae decode`).
 *
 * A codes file holds n images as G codes each in [0, K), packed at
 * b = ceil(log2 K) bits per code (log2 K exactly for a power of two).
 * Integers are little-endian:
 *
 *     offset  bytes              field
 *     0       4                  magic "TGVQ"
 *     4       4                  version, uint32: 1
 *     8       4                  K, the codebook size, uint32 in [2, 65536]
 *     12      4                  G, codes per image, uint32 >= 1
 *     16      4                  n, images, uint32 >= 1
 *     20      ceil(n G b / 8)    the codes, image after image, each image's in
 *                                grid order (row-major); code c occupies b bits
 *                                of one stream, least significant bit first,
 *                                the stream filling each byte from its least
 *                                significant bit; the last byte's unused bits 0
 *
 * and nothing after. A 28 x 28 image of 49 codes of K = 64 takes 294 bits,
 * 36.75 bytes, against 784 bytes of pixels. */
#define TG_CODES_MAGIC "TGVQ"
#define TG_CODES_VERSION 1
#define TG_CODES_HEADER 20

typedef struct {
    int64_t K, G, n;
    int64_t *codes;   /* (n, G), malloc'd */
} tg_codes;

/* b = ceil(log2 K), the bits of a code, for K >= 2. */
int tg_codes_bits(int64_t K);
/* The size of a codes file of n images of G codes of K: TG_CODES_HEADER + ceil(n G b / 8). */
int64_t tg_codes_file_size(int64_t K, int64_t G, int64_t n);

/* G, the codes per image of m (which has codes): the width of its encoding
 * of one blank image. */
int64_t tg_run_codes_per_image(const tg_model *m);
/* The codes (n, G) of the n images of x (pixels / 255) under m, which has
 * codes (tg_model_gaussian false): c->codes malloc'd. 0, or -1 if out of memory. */
int tg_run_encode(const tg_model *m, const tg_images *x, tg_codes *c, tg_err *e);
/* The images of c's codes (tg_model_decode of the int64 (n, G) codes, then
 * tg_model_pixels), quantised into out (n * D bytes). 0, or -1 with the message. */
int tg_run_decode_codes(const tg_model *m, const tg_codes *c, uint8_t *out, tg_err *e);

/* Writes c to path atomically (io/file.h). 0, or -1 with the message. */
int tg_codes_write(const char *path, const tg_codes *c, tg_err *e);
/* Reads a codes file: magic, version, K, G and n in range, the size exactly
 * the header's, every code < K and the padding bits 0; c->codes malloc'd
 * (free with tg_codes_free). 0, or -1 with "path: problem". */
int tg_codes_read(const char *path, tg_codes *c, tg_err *e);
void tg_codes_free(tg_codes *c);

#endif
