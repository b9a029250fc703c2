/*
 * evaluate.h — a finished run of `vae train` (examples/vae/train.h) read back:
 * the model rebuilt from DIR/config.json with DIR/model.safetensors loaded,
 * evaluated on the test set, or sampled from its prior. Used by `vae eval`
 * and `vae sample` (examples/vae/main.c).
 *
 *     tg_run_info ri;
 *     tg_vae_model m;
 *     tg_err err;
 *     if (tg_run_info_load("runs/vae", &ri, &err) != 0) ...          // "runs/vae/config.json: ..."
 *     tg_params *ps = tg_run_model_load("runs/vae", &ri, &m, &err);   // NULL on error
 *     tg_eval_result r;
 *     tg_run_evaluate(&m, &ri, &ds, 1000, 1, &r, &err);
 *
 * Errors are one message naming the file and the problem.
 */
#ifndef TG_VAE_EVALUATE_H
#define TG_VAE_EVALUATE_H

#include "examples/vae/train.h"
#include "io/json.h"

/* The model's configuration (tg_vae_config) of a run. */
tg_vae_config tg_run_vae_config(const tg_run_info *ri);

/* Builds the model of ri (config.json, tg_run_info_load in examples/vae/train.h)
 * into a new float32 tg_params and loads dir/model.safetensors into it: it
 * must be of this run (its "config" metadata equal to config.json's settings
 * but the epochs), of the model's shapes (a mismatch names config.json), and
 * finite. Returns the parameters (free with tg_params_free), or NULL with the
 * message. */
tg_params *tg_run_model_load(const char *dir, const tg_run_info *ri, tg_vae_model *m, tg_err *e);

/* The test set as the run's trainer saw it: binarised with the generator
 * seeded seed + 3 (after the training set for static binarisation), or the
 * gray images. *out is malloc'd (free with tg_images_free). 0, or -1. */
int tg_run_test_images(const tg_run_info *ri, const tg_dataset *ds, tg_images *out, tg_err *e);

/* Test-set figures, in nats per image. */
typedef struct {
    int64_t images, iw_samples, latent;
    double elbo;          /* recon + kl: the negative ELBO with one z sample per image */
    double recon, kl;
    double nll;           /* -log p(x) importance-sampled with iw_samples samples */
    int64_t active_units; /* dims whose variance of E_q[z] over the test set > 0.01 */
    double *kl_per_dim;   /* (latent), averaged per image; malloc'd */
} tg_eval_result;

/* Evaluates m on the run's test set (tg_run_test_images); ds's images must be
 * of the run's size (tg_run_check_data). z samples come
 * from a generator seeded seed, the importance samples from seed + 1; results
 * do not depend on the thread count. progress, if not NULL, gets a line per
 * batch. Returns 0, or -1 with the message. */
int tg_run_evaluate(const tg_vae_model *m, const tg_run_info *ri, const tg_dataset *ds, int64_t iw_samples,
                    uint64_t seed, FILE *progress, tg_eval_result *r, tg_err *e);
void tg_eval_result_free(tg_eval_result *r);

/* r as one JSON object (elbo, recon, kl, nll, active_units, kl_per_dim,
 * iw_samples, images) in w (tg_jsonw_init'ed by the call); NULL if w failed. */
const char *tg_eval_result_json(const tg_eval_result *r, tg_jsonw *w);

/* n images (n, D) in [0, 1] drawn from the prior (the learned one if the run
 * has it) at temperature T and decoded: z = mu_p + T sigma_p eps, eps ~ N(0, I)
 * from a generator seeded seed (T = 1: the prior itself; T = 0: z = mu_p, the
 * prior mean, with no draws, so every seed gives the same images; T finite
 * and >= 0, else abort); sigmoid of Bernoulli logits, Gaussian means clamped
 * to [0, 1]. CVAE: label >= 0 gives every image that class, label < 0 class
 * i % classes to image i. Then quantised as tg_png_pixel_from_f32 into out
 * (n * D bytes). */
/* Returns 0, or -1 with the message if a decoded value is not finite (an
 * overflowing temperature). */
int tg_run_sample(const tg_vae_model *m, int64_t n, int label, double temperature, uint64_t seed, uint8_t *out,
                  tg_err *e);

#endif
