/*
 * checkpoint.h — a model's parameters (tg_params) saved to and loaded from
 * a safetensors file (io/safetensors.h), under their names, so PyTorch's
 * load_state_dict takes them as they are (checkpoint.c).
 *
 *     tg_err err;
 *     const char *keys[] = {"hidden", "latent"}, *vals[] = {"400", "20"};
 *     if (tg_params_save(ps, "model.safetensors", 2, keys, vals, &err) != 0) { report err.msg }
 *     ...later, with a model built to the same sizes:
 *     if (tg_params_load(ps, "model.safetensors", &err) != 0) { report; ps is unchanged }
 *
 *   In Python: safetensors.torch.load_file("model.safetensors")["fc1.weight"]
 *   is a (400, 784) float32 tensor.
 */
#ifndef TG_CHECKPOINT_H
#define TG_CHECKPOINT_H

#include "io/safetensors.h"
#include "nn/nn.h"

/* Writes every parameter of ps under its name (e.g. "fc1.weight") with its
 * shape and ps->dtype, in creation order, then every buffer (e.g.
 * "bn1.running_mean", "bn1.num_batches_tracked" as I64), plus the metadata. As
 * tg_safetensors_write (io/safetensors.h). */
int tg_params_save(const tg_params *ps, const char *path, int n_meta, const char *const meta_keys[],
                   const char *const meta_vals[], tg_err *e);

/* Sets every parameter and buffer of ps from the tensor of the same name in
 * path, converting F32 <-> F64 (and I64) as needed (tensors in the file that
 * ps lacks are ignored). Every one must be present with exactly its shape;
 * otherwise nothing is changed and -1 is returned with e.g.
 *   "model.safetensors: tensor fc1.weight has shape [400, 784] but the model expects [300, 784]"
 *   "model.safetensors: no tensor fc_mu.bias"
 * Gradients are not touched. */
int tg_params_load(tg_params *ps, const char *path, tg_err *e);
/* tg_params_load that appends " (shape_hint)" to shape-mismatch messages,
 * e.g. shape_hint "check --hidden / --latent". shape_hint may be NULL. */
int tg_params_load_hint(tg_params *ps, const char *path, const char *shape_hint, tg_err *e);
/* The same from a file already read (path names it in messages), for callers
 * that also need its metadata. */
int tg_params_load_from(tg_params *ps, const tg_safetensors *st, const char *path, const char *shape_hint,
                        tg_err *e);

#endif
