/*
 * train.h — one training loop for the VAE family (models/vae_family.h), as
 * run by `vae train` (examples/vae.c).
 *
 *     tg_train_opts o = tg_train_opts_default();
 *     o.model = TG_RUN_CVAE, o.epochs = 2, o.out_dir = "runs/cvae";
 *     tg_err err;
 *     int rc = tg_train_run(&o, &ds, stdout, &err);   // 0, or 1 with err.msg
 *
 * Per epoch: the training set in a fresh shuffled order (with labels for the
 * CVAE), one Adam step per batch with the KL weight beta * tg_kl_weight(...);
 * then the test set without gradients, one z sample per image: test loss
 * (recon + kl, the negative ELBO), recon and kl, in nats per image. The
 * epoch's line goes to `log`, and these files are written atomically in
 * out_dir (only at epoch end, so a crash leaves the last epoch's files):
 *   model.safetensors      parameters (tg_params_save), metadata "format" and
 *                          "config" (config.json without data, out, threads)
 *   optimizer.safetensors  params, adam.m, adam.v (ps->n each) and metadata
 *                          adam.step, epoch (epochs complete), epoch_step
 *                          (steps done into the next epoch, 0 at an epoch's
 *                          end), train_loss_sum and epoch_seconds (of those
 *                          steps) and the generator states rng.<name> (s0..s3
 *                          in hex, then the bits of a cached normal if any;
 *                          rng.data as it was before the epoch's shuffle)
 *   config.json            every setting
 *   metrics.csv            epoch,train_loss,test_loss,recon,kl,kl_weight,seconds
 *   reconstruction_<e>.png 8 test images above their reconstructions (z = mu)
 *   sample_<e>.png         64 prior samples (CVAE: 10 rows of 8, row = class)
 * train_loss is the objective optimised (recon + kl_weight * kl) per image,
 * averaged over the epoch; kl_weight is the one of the epoch's last step.
 *
 * Random streams, from seed s: s init, s+1 shuffling, s+2 noise (z, dynamic
 * binarisation), s+3 static binarisation, s+4 samples (re-seeded each epoch,
 * so sample_<e>.png show the same z through training).
 *
 * A non-finite loss, recon or kl stops the run: 1 with "non-finite <what> at
 * epoch E, step S; last good checkpoint kept in DIR" (S counts the epoch's
 * steps from 1).
 *
 * Checkpoints. Each file is replaced atomically (data/write.h), in the order
 * metrics.csv, model.safetensors, optimizer.safetensors. The last is the
 * commit point: a resume takes the parameters, Adam state, generators and
 * position from it alone (and metrics.csv's rows up to its epoch), so a run
 * killed at any moment resumes from the last checkpoint it completed and ends
 * byte-identical to an uninterrupted run. With o->stop set, the run saves
 * mid-epoch (model.safetensors and optimizer.safetensors, no metrics row) and
 * a resume continues from that step.
 */
#ifndef TG_TRAIN_H
#define TG_TRAIN_H

#include <signal.h>
#include <stdio.h>

#include "data/data.h"
#include "models/vae_family.h"

typedef enum { TG_RUN_VAE, TG_RUN_BETA_VAE, TG_RUN_ANNEALED_VAE, TG_RUN_CVAE } tg_run_model;
typedef enum { TG_BINARIZE_NONE, TG_BINARIZE_STATIC, TG_BINARIZE_DYNAMIC } tg_binarize;

typedef struct {
    tg_run_model model;
    const char *data_dir;       /* for config.json only; the data are passed in */
    int64_t epochs, batch;
    int n_hidden;
    int64_t hidden[TG_VAE_MAX_HIDDEN];
    int64_t latent;
    double lr, beta;            /* beta multiplies the KL of every model */
    tg_kl_kind anneal;          /* annealed-vae: TG_KL_LINEAR or TG_KL_CYCLICAL */
    int64_t anneal_epochs;      /* linear by epoch (used when anneal_steps == 0) */
    int64_t anneal_steps;       /* linear by step when > 0 */
    int cycles;                 /* cyclical */
    double ratio;               /* cyclical */
    tg_prior prior;             /* learned: CVAE only */
    tg_likelihood lik;
    tg_binarize binarize;
    uint64_t seed;
    int threads;                /* for config.json: 0 = default */
    const char *out_dir;        /* must exist */
    bool resume;                /* continue the run in out_dir from its last checkpoint */
    FILE *progress;             /* if not NULL (a terminal), a progress bar redrawn there */
    const volatile sig_atomic_t *stop;   /* if not NULL: once *stop != 0, the step ends,
                                            the state is saved and the run returns 0 */
} tg_train_opts;

/* The defaults of `vae train`: vae, 10 epochs, batch 128, hidden 400, latent
 * 20, lr 1e-3, beta 1, linear annealing over 10 epochs, 4 cycles of ratio
 * 0.5, standard prior, Bernoulli, no binarisation, seed 1. */
tg_train_opts tg_train_opts_default(void);

const char *tg_run_model_name(tg_run_model m);   /* "vae", "beta-vae", ... */

/* The images a run trains and tests on, binarised as o->binarize says by
 * one generator r (seeded seed + 3 by the trainer): the training set first
 * (static only; with train NULL its draws are skipped), then the test set
 * (static and dynamic; dynamic binarisation redraws each training batch with
 * tg_binarize_f32 instead). For TG_BINARIZE_NONE both are left zeroed (use
 * the dataset's own). Free with tg_images_free. 0, or -1 if out of memory. */
int tg_train_images(tg_binarize mode, tg_rng *r, const tg_dataset *ds, tg_images *train, tg_images *test,
                    tg_err *e);

/* The KL schedule of a run of steps_per_epoch steps per epoch. */
tg_kl_schedule tg_train_schedule(const tg_train_opts *o, int64_t steps_per_epoch);

/* Resuming (o->resume): the run in out_dir continues after the epoch saved in
 * optimizer.safetensors, with the parameters, Adam state and generators of
 * its files and metrics.csv's earlier rows kept, up to o->epochs in total;
 * the result is byte-identical to an uninterrupted run. Every file is read
 * and checked before anything is written; an error names the file.
 * tg_train_opts_load gives the settings of out_dir's config.json (data_dir
 * copied into data), with resume set; tg_train_checkpoint_epoch the epochs
 * done. Both return 0, or -1 with the message in e. */
int tg_train_opts_load(const char *dir, tg_train_opts *o, char *data, size_t data_cap, tg_err *e);
int tg_train_checkpoint_epoch(const char *dir, int64_t *epoch, tg_err *e);

/* Trains as described above. Returns 0, or 1 with the message in e. */
int tg_train_run(const tg_train_opts *o, const tg_dataset *ds, FILE *log, tg_err *e);

#endif
