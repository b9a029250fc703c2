/*
 * train.h — one training loop for the VAE family (models/parts.h), as
 * run by `vae train` (examples/vae/main.c).
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
 *   optimizer.safetensors  params, adam.m, adam.v (ps->n each), each buffer of
 *                          the model as buffer.<name> (the VQ-VAE's code_prior), and metadata
 *                          config (as model.safetensors'), adam.step,
 *                          epoch (epochs complete), epoch_step
 *                          (steps done into the next epoch, 0 at an epoch's
 *                          end), train_loss_sum and epoch_seconds (of those
 *                          steps) and the generator states rng.<name> (s0..s3
 *                          in hex, then the bits of a cached normal if any;
 *                          rng.data as it was before the epoch's shuffle)
 *   config.json            every setting
 *   metrics.csv            epoch,train_loss,test_loss,<the model's terms>[,kl_weight],seconds
 *                          (kl_weight when the model has a kl term)
 *   curves.png             the losses of metrics.csv against the epoch
 *   reconstruction_<e>.png 8 test images above their reconstructions (z = mu)
 *   sample_<e>.png         64 prior samples (CVAE: 10 rows of 8, row = class)
 * train_loss is the objective optimised per image (recon + kl_weight * kl
 * for the VAEs), averaged over the epoch; kl_weight is the one of the
 * epoch's last step.
 *
 * Random streams, from seed s: s init, s+1 shuffling, s+2 noise (z, dynamic
 * binarisation), s+3 static binarisation, s+4 samples (re-seeded each epoch,
 * so sample_<e>.png show the same z through training).
 *
 * A non-finite loss, recon or kl stops the run: 1 with "non-finite <what> at
 * epoch E, step S; last good checkpoint kept in DIR" (S counts the epoch's
 * steps from 1).
 *
 * Checkpoints. Each file is replaced atomically (io/file.h), in the order
 * config.json, metrics.csv, model.safetensors, optimizer.safetensors (the
 * images of an epoch come before them); nothing is written before the first
 * checkpoint, so a run that fails early leaves no files. The last is the
 * commit point: a resume takes the parameters, Adam state, generators and
 * position from it alone (and metrics.csv's rows up to its epoch), so a run
 * killed at any moment resumes from the last checkpoint it completed and ends
 * byte-identical to an uninterrupted run. With o->stop set, the run saves
 * mid-epoch (no new metrics row) and a resume continues from that step.
 */
#ifndef TG_VAE_TRAIN_H
#define TG_VAE_TRAIN_H

#include <signal.h>
#include <stdio.h>

#include "data/data.h"
#include "io/safetensors.h"
#include "models/model.h"

typedef enum { TG_BINARIZE_NONE, TG_BINARIZE_STATIC, TG_BINARIZE_DYNAMIC } tg_binarize;

typedef struct {
    const char *model;          /* a name tg_model_find knows: "vae", "cvae", ... */
    const char *data_dir;       /* for config.json only; the data are passed in */
    int64_t epochs, batch;
    int n_hidden;
    int64_t hidden[TG_VAE_MAX_HIDDEN];
    int64_t latent;
    double lr, beta;            /* beta multiplies the KL of every model */
    tg_kl_kind anneal;          /* annealed-vae: TG_KL_LINEAR or TG_KL_CYCLICAL */
    int64_t anneal_epochs;      /* linear by epoch (used when anneal_steps == 0) */
    int64_t anneal_steps;       /* linear by step when > 0 */
    int cycles;                 /* cyclical: cycles over schedule_epochs */
    double ratio;               /* cyclical */
    int64_t schedule_epochs;    /* cyclical: the epochs the cycles span, fixed when the run starts
                                   (0: epochs); a run extended by --resume keeps its schedule and
                                   trains its added epochs at weight 1, the schedule's end */
    tg_prior prior;             /* learned: CVAE only */
    int64_t k;                  /* iwae: samples per image */
    int64_t codes, code_dim;    /* vq-vae: codebook size and vector size */
    double commitment;          /* vq-vae: the commitment loss's weight */
    tg_likelihood lik;
    tg_binarize binarize;
    uint64_t seed;
    int threads;                /* for config.json: 0 = default */
    const char *out_dir;        /* must exist */
    bool resume;                /* continue the run in out_dir from its last checkpoint */
    const char *graph;          /* if not NULL: the first step's tape is written there as DOT
                                   (tg_tape_dot_save); not a setting of the run */
    bool profile;               /* after each epoch, its steps' seconds in data, zero_grad,
                                   forward, backward and optimizer (not a setting of the run) */
    FILE *progress;             /* if not NULL (a terminal), a progress bar redrawn there */
    const volatile sig_atomic_t *stop;   /* if not NULL: once *stop != 0, the step ends,
                                            the state is saved and the run returns 0 */
} tg_train_opts;

/* The limits of a run's settings, enforced alike by `vae train`'s flags,
 * by tg_train_run before it writes anything and by tg_run_info_load. */
#define TG_RUN_MAX_EPOCHS 1000000
#define TG_RUN_MAX_BATCH (1 << 20)
#define TG_RUN_MAX_HIDDEN (1 << 24)     /* units in a hidden layer */
#define TG_RUN_MAX_LATENT (1 << 16)
#define TG_RUN_MAX_SIDE (1 << 16)       /* image rows, image columns */
#define TG_RUN_MAX_SEED ((int64_t)1 << 62)
#define TG_RUN_MAX_STEPS ((int64_t)1 << 40)
#define TG_RUN_MAX_K 100000             /* iwae samples per image */
#define TG_RUN_MAX_CODES 65536          /* vq-vae codebook size */
#define TG_RUN_MAX_CODE_DIM 4096

/* Checks o against those limits, and the image size rows x cols unless rows
 * is 0: 0, or -1 with one message such as "hidden 16777217 is out of range
 * [1, 16777216]" (the setting's config.json name, the value, the range). */
int tg_train_opts_check(const tg_train_opts *o, int64_t rows, int64_t cols, tg_err *e);

/* The defaults of `vae train`: vae, 10 epochs, batch 128, hidden 400, latent
 * 20, lr 1e-3, beta 1, linear annealing over 10 epochs, 4 cycles of ratio
 * 0.5, standard prior, Bernoulli, k 5, 64 codes of 16, commitment 0.25, no
 * binarisation, seed 1. */
tg_train_opts tg_train_opts_default(void);

/* The model's settings of a run on rows x cols images (classes 10 for a
 * conditional model, else 0). */
tg_model_config tg_train_model_config(const tg_train_opts *o, int64_t rows, int64_t cols);

/* The images a run trains and tests on, binarised as o->binarize says by
 * one generator r (seeded seed + 3 by the trainer): the training set first
 * (static only; with train NULL its draws are skipped), then the test set
 * (static and dynamic; dynamic binarisation redraws each training batch with
 * tg_binarize_f32 instead). For TG_BINARIZE_NONE both are left zeroed (use
 * the dataset's own). Free with tg_images_free. 0, or -1 if out of memory. */
int tg_train_images(tg_binarize mode, tg_rng *r, const tg_dataset *ds, tg_images *train, tg_images *test,
                    tg_err *e);

/* A run's settings as its config.json holds them. */
typedef struct {
    tg_train_opts o;             /* as trained (resume false, out_dir NULL); o.data_dir = data or NULL */
    int64_t classes;             /* 0, or K for a CVAE */
    int64_t rows, cols;          /* image size */
    int64_t train_images, test_images;
    char data[4096];             /* "data" of config.json ("" if absent) */
    char model[64];              /* "model" of config.json; o.model points here */
} tg_run_info;

/* Reads dir/config.json: every field present, of its type and within the
 * limits above. Returns 0, or -1 with "dir/config.json: problem". */
int tg_run_info_load(const char *dir, tg_run_info *ri, tg_err *e);

/* Checks a dataset against the run: image size and, for a CVAE, classes;
 * with counts, the numbers of training and test images too. 0, or -1 with
 * "DATA: <what differs> (the run in DIR was trained on ...)". */
int tg_run_check_data(const tg_run_info *ri, const char *dir, const tg_dataset *ds, bool counts, tg_err *e);

/* Whether the model of cfg, with its gradients and optimizer state, can be
 * allocated: 0, or -1 with "not enough memory for a model of N parameters
 * (X GB ...); choose smaller --hidden or --latent". Also the model type's
 * own check of cfg. */
int tg_train_params_fit(const tg_model_type *type, const tg_model_config *cfg, tg_err *e);

/* Checks that the checkpoint st read from path (model.safetensors or
 * optimizer.safetensors) was written by the run of ri: its metadata "config"
 * (if present: older runs lack it in optimizer.safetensors) must hold ri's
 * settings, the epochs aside. 0, or -1 with "PATH was written by another run:
 * its "seed" is 2, config.json has 1". */
int tg_train_check_checkpoint(const char *path, const tg_safetensors *st, const tg_run_info *ri, tg_err *e);

/* The epochs complete in dir's optimizer.safetensors. 0, or -1 with the message. */
int tg_train_checkpoint_epoch(const char *dir, int64_t *epoch, tg_err *e);

/* Resuming (o->resume): the run in out_dir continues after the position saved
 * in optimizer.safetensors, with the parameters, Adam state and generators of
 * its files and metrics.csv's earlier rows kept, up to o->epochs in total;
 * the result is byte-identical to an uninterrupted run. Every file is read
 * and checked before anything is written: optimizer.safetensors must be of
 * this run (its "config" metadata equal to config.json's settings but the
 * epochs) and its position must fit the data (epoch_step within the epoch's
 * steps, adam.step = epoch * steps + epoch_step); an error names the file
 * and what differs.
 *
 * Trains as described above, into o->out_dir (which the caller has opened
 * with tg_run_dir_open, examples/vae/run_dir.h). config.json and metrics.csv are
 * written with each checkpoint, so a run that fails before its first
 * checkpoint leaves no files. Returns 0, or 1 with the message in e. */
int tg_train_run(const tg_train_opts *o, const tg_dataset *ds, FILE *log, tg_err *e);

#endif
