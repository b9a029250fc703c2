/* vq.c — vector quantisation with a straight-through gradient (vq.h). */
#include "models/vq.h"

tg_vq_out tg_vq_quantize_(TG_LOC, tg_tape *t, tg_var *z_e, tg_var *book) {
    char b1[96], b2[96];
    if (z_e->val.shape.ndim != 2 || book->val.shape.ndim != 2 || z_e->val.shape.d[1] != book->val.shape.d[1])
        tg_die(file, line, "vq_quantize: z_e %s and codebook %s must be (N, D) and (K, D)",
               tg_shape_str(z_e->val.shape, b1), tg_shape_str(book->val.shape, b2));
    tg_vq_out o;
    /* Nearest codes, without gradient: |z|^2 - 2 z e^T + |e|^2, (N, K). */
    bool prev = tg_no_grad(t);
    tg_var *zd = tg_detach(t, z_e), *ed = tg_detach(t, book);
    tg_var *d = tg_add(t, tg_sub(t, tg_sum_axis(t, tg_square(t, zd), 1, true), tg_mul_scalar(t, tg_matmul(t, zd, ed, false, true), 2)),
                       tg_sum_axis(t, tg_square(t, ed), 1, false));
    o.codes = tg_argmin_(file, line, t, d, 1, false);
    tg_set_grad(t, prev);
    tg_var *e = tg_embedding_(file, line, t, book, o.codes);                  /* (N, D): e_codes, into the codebook */
    o.z_q = tg_add(t, z_e, tg_detach(t, tg_sub(t, e, z_e)));                  /* straight through */
    o.codebook = tg_sum(t, tg_square(t, tg_sub(t, tg_detach(t, z_e), e)));
    o.commitment = tg_sum(t, tg_square(t, tg_sub(t, z_e, tg_detach(t, e))));
    return o;
}
