/*
 * linalg.c — matrix products: matmul, and affine, the fused layer
 * act(x W^T + b) that nn's Linear records as one entry.
 *
 * The products run on the packed GEMM through tg_tensor_matmul, batched ones
 * through tg_tensor_bmm; an operand read transposed is never copied, in
 * forward or backward.
 */
#include "autograd/internal.h"

/* ---------------------------------------------------------------- matmul */

/* C = op(A) op(B), op(M) = M^T if its flag is set; operands of more than two
 * dims are batches of matrices, their batch dims broadcast (tg_tensor_bmm). */
tg_var *tg_matmul_(TG_LOC, tg_tape *t, tg_var *a, tg_var *b, bool ta, bool tb) {
    char b1[96], b2[96];
    tg_check_same_dtype(file, line, "matmul", a, b);
    tg_shape sa = a->val.shape, sb = b->val.shape, batch_a = {.ndim = sa.ndim - 2}, batch_b = {.ndim = sb.ndim - 2}, s;
    OP_CHECK(sa.ndim >= 2 && sb.ndim >= 2, "matmul: operands must be at least 2-D (1-D is not supported: reshape "
             "to (1, K) or (K, 1)), got %s%s and %s%s", tg_shape_str(sa, b1), ta ? "^T" : "", tg_shape_str(sb, b2),
             tb ? "^T" : "");
    int64_t M = sa.d[batch_a.ndim + ta], K = sa.d[batch_a.ndim + !ta];
    int64_t Kb = sb.d[batch_b.ndim + tb], N = sb.d[batch_b.ndim + !tb];
    OP_CHECK(K == Kb, "matmul: inner dimensions differ: %s%s @ %s%s", tg_shape_str(sa, b1), ta ? "^T" : "",
             tg_shape_str(sb, b2), tb ? "^T" : "");
    for (int k = 0; k < batch_a.ndim; k++) batch_a.d[k] = sa.d[k];
    for (int k = 0; k < batch_b.ndim; k++) batch_b.d[k] = sb.d[k];
    OP_CHECK(tg_shape_broadcast(batch_a, batch_b, &s), "matmul: batch dimensions are not broadcastable: %s%s @ %s%s",
             tg_shape_str(sa, b1), ta ? "^T" : "", tg_shape_str(sb, b2), tb ? "^T" : "");
    s.d[s.ndim++] = M, s.d[s.ndim++] = N;   /* (batch..., M, N): at most as many dims as an operand */
    tg_var *out = tg_var_new(t, a->val.dtype, s);
    tg_tensor_bmm(&out->val, &a->val, ta, &b->val, tb, 0.0);
    tg_entry *e = tg_record(t, TG_OP_MATMUL, out, a, b);
    if (e) e->i[0] = ta, e->i[1] = tb;
    return out;
}

/* d op(A) = dC op(B)^T and d op(B) = op(A)^T dC. When an operand was read
 * transposed its gradient is the transpose of that, (dC op(B)^T)^T =
 * op(B) dC^T, which the flags of the same product express without a copy.
 * Batched, each batch's product lands in its operand's matrix, and the
 * products of the batches an operand was broadcast over are summed into it
 * (tg_tensor_bmm into a gradient of the operand's shape). */
TG_BACKWARD(matmul) {
    tg_var *a = e->in[0], *b = e->in[1];
    bool ta = e->i[0], tb = e->i[1];
    tg_tensor *ga = grad_of(t, a), *gb = grad_of(t, b), *g = &e->out->grad;
    if (ga) {
        if (!ta) tg_tensor_bmm(ga, g, false, &b->val, !tb, 1.0);   /* dA   = dC op(B)^T */
        else tg_tensor_bmm(ga, &b->val, tb, g, true, 1.0);         /* dA^T = op(B) dC^T */
    }
    if (gb) {
        if (!tb) tg_tensor_bmm(gb, &a->val, !ta, g, false, 1.0);   /* dB   = op(A)^T dC */
        else tg_tensor_bmm(gb, g, true, &a->val, ta, 1.0);         /* dB^T = dC^T op(A) */
    }
}

/* ---------------------------------------------------------------- affine */

/* y = act(x W^T + b): x (B, in), W (out, in), b (out); act is none or ReLU. */
tg_var *tg_affine_(TG_LOC, tg_tape *t, tg_var *x, tg_var *w, tg_var *b, tg_act act) {
    char b1[96], b2[96], b3[96];
    tg_check_same_dtype(file, line, "affine", x, w);
    tg_check_same_dtype(file, line, "affine", x, b);
    tg_shape sx = x->val.shape, sw = w->val.shape, sb = b->val.shape;
    OP_CHECK(sx.ndim == 2 && sw.ndim == 2 && sb.ndim == 1 && sx.d[1] == sw.d[1] && sb.d[0] == sw.d[0],
             "affine: x %s, w %s, b %s do not fit x (B, in), w (out, in), b (out)", tg_shape_str(sx, b1),
             tg_shape_str(sw, b2), tg_shape_str(sb, b3));
    tg_var *out = tg_var_new(t, x->val.dtype, TG_SHAPE(sx.d[0], sw.d[0]));
    tg_tensor_expand(&out->val, &b->val);                        /* y = b in every row */
    tg_tensor_matmul(&out->val, &x->val, false, &w->val, true, 1.0);   /* y += x W^T */
    if (act == TG_ACT_RELU) tg_tensor_relu(&out->val, &out->val);
    tg_entry *e = tg_record3(t, TG_OP_AFFINE, out, x, w, b);
    if (e) e->i[0] = act;
    return out;
}

/* With G = dy (zeroed where y = 0 if ReLU was fused: y > 0 exactly where the
 * pre-activation was): dx += G W, dW += G^T x, db += G summed over the rows. */
TG_BACKWARD(affine) {
    tg_var *x = e->in[0], *w = e->in[1], *b = e->in[2];
    const tg_tensor *g = &e->out->grad;
    if (e->i[0] == TG_ACT_RELU) {
        tg_tensor *masked = scratch(t, g);
        tg_tensor_mask_pos(masked, g, &e->out->val);
        g = masked;
    }
    /* dx is written (=) when nothing has reached it yet, else added (+=):
     * no zeroed buffer to allocate and read back. */
    bool set_x = grad_untouched(x) && x != w && x != b;
    tg_tensor *gx = grad_for(t, x, set_x), *gw = grad_of(t, w), *gb = grad_of(t, b);
    if (gx) tg_tensor_matmul(gx, g, false, &w->val, false, set_x ? 0.0 : 1.0);
    if (gw) tg_tensor_matmul(gw, g, true, &x->val, false, 1.0);
    if (gb) tg_tensor_acc_sum_to(gb, g, 1);
}
