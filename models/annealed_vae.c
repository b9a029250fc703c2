/* annealed_vae.c — the VAE with KL annealing (Bowman et al., 2016; the
 * cyclical schedule of Fu et al., 2019): the KL's weight w rises from 0 to 1
 * during training, so the decoder learns to use z before the KL can shut it,
 *     loss = recon + w * kl,
 * w = tg_kl_weight (parts.h) of the schedule the settings give:
 *   linear by epoch (the default): min(1, epoch / anneal_epochs), epochs
 *     from 1 — with --anneal-epochs 4 the epochs train at 0.25, 0.5, 0.75, 1, 1, ...
 *   linear by step (--anneal-steps N): min(1, step / N), steps from 0
 *   cyclical (--anneal cyclical): `cycles` ramps over schedule_epochs, each
 *     rising over `ratio` of its cycle, then 1.
 * At evaluation w = 1: the ELBO. */
#include "models/mlp_vae.h"

/* The schedule's weight at batch b's step and epoch. */
static double weight(const tg_model_config *c, const tg_model_batch *b) {
    tg_kl_schedule s = {.kind = c->anneal};
    if (c->anneal == TG_KL_CYCLICAL) {
        s.cycles = c->cycles, s.ratio = c->ratio;
        s.total_steps = (c->schedule_epochs > 0 ? c->schedule_epochs : b->epochs) * b->steps_per_epoch;
    } else if (c->anneal_steps > 0) {
        s.warmup = c->anneal_steps;
    } else {
        s.by_epoch = true, s.warmup = c->anneal_epochs;
    }
    return tg_kl_weight(&s, b->step, b->epoch);
}

static tg_model_out annealed_vae_loss(tg_tape *t, void *self, const tg_model_batch *b) {
    double w = b->train ? weight(b->cfg, b) : 1;
    tg_vae_model_out e = tg_mlp_vae_terms(t, self, b);
    return tg_mlp_vae_out(&e, tg_add(t, e.recon, tg_mul_scalar(t, e.kl, w)), w);
}

const tg_model_type tg_annealed_vae_type = {
    .name = "annealed-vae", .about = "the VAE with KL annealing: recon + w(step) * kl", .terms = {"recon", "kl"},
    TG_MLP_VAE_HOOKS, .check = tg_mlp_vae_check, .loss = annealed_vae_loss};
