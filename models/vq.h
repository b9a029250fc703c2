/*
 * vq.h — vector quantisation (van den Oord et al., 2017), the VQ-VAE's
 * bottleneck, composed from the ops: each row of z_e is replaced by its
 * nearest codebook vector (squared L2), the gradient passes straight through
 * to z_e, and two losses pull the codebook and the encoder together.
 *
 *     tg_var *book = tg_params_add(ps, "codebook.weight", TG_SHAPE(64, 16));   // (K, D)
 *     tg_vq_out q = tg_vq_quantize(t, z_e, book);                           // z_e (N, D)
 *     loss = recon(decode(q.z_q)) + q.codebook + 0.25 * q.commitment;
 */
#ifndef TG_VQ_H
#define TG_VQ_H

#include "nn/nn.h"

typedef struct {
    tg_var *codes;       /* (N) int64: argmin_k |z_e[n] - e_k|^2, the first on ties */
    tg_var *z_q;         /* (N, D): z_e + detach(e_codes - z_e), the value e_codes with dL/dz_e = dL/dz_q */
    tg_var *codebook;    /* sum_n |detach(z_e[n]) - e_codes[n]|^2: moves the chosen codes (scalar) */
    tg_var *commitment;  /* sum_n |z_e[n] - detach(e_codes[n])|^2: keeps z_e near them (scalar) */
} tg_vq_out;

/* z_e (N, D), book (K, D), one dtype. Distances |z|^2 - 2 z e^T + |e|^2 by
 * one matmul; codes by tg_argmin; e_codes by tg_embedding. */
tg_vq_out tg_vq_quantize_(TG_LOC, tg_tape *t, tg_var *z_e, tg_var *book);
#define tg_vq_quantize(...) tg_vq_quantize_(TG_AT, __VA_ARGS__)

#endif
