/*
 * conv.c — conv2d and conv_transpose2d, each one tape entry.
 *
 * The derivative rules are the kernels of tensor/conv.c read in the other
 * direction: conv2d's input gradient is conv_transpose2d of dy and its
 * weight gradient one GEMM of dy against the im2col matrix the forward
 * built (saved on the entry); conv_transpose2d's input gradient is conv2d of
 * dy and its weight gradient the same GEMM with the roles swapped. When no
 * gradient has reached x, w or b yet, the kernels write them (=) rather than
 * add into zeros.
 */
#include "autograd/internal.h"

/* Checks x, w, b and a for op (conv2d, or conv_transpose2d if transpose),
 * aborting naming op, the shapes and the caller; returns the output shape
 * and a with its zeros made ones. */
static tg_shape conv_shape(TG_LOC, const char *op, bool transpose, tg_var *x, tg_var *w, tg_var *b, tg_conv_args *a) {
    char b1[96], b2[96], b3[96];
    tg_check_float(file, line, op, x);
    tg_check_same_dtype(file, line, op, x, w);
    if (b) tg_check_same_dtype(file, line, op, x, b);
    tg_shape sx = x->val.shape, sw = w->val.shape;
    const char *wdesc = transpose ? "(C, O / groups, kh, kw)" : "(O, C / groups, kh, kw)";
    OP_CHECK(sx.ndim == 4 && sw.ndim == 4, "%s: x %s must be (N, C, H, W) and w %s %s", op, tg_shape_str(sx, b1),
             tg_shape_str(sw, b2), wdesc);
    for (int k = 0; k < 2; k++) {
        OP_CHECK(a->stride[k] >= 0 && a->padding[k] >= 0 && a->dilation[k] >= 0 && a->output_padding[k] >= 0,
                 "%s: negative stride (%lld, %lld), padding (%lld, %lld), dilation (%lld, %lld) or output_padding "
                 "(%lld, %lld)", op, (long long)a->stride[0], (long long)a->stride[1], (long long)a->padding[0],
                 (long long)a->padding[1], (long long)a->dilation[0], (long long)a->dilation[1],
                 (long long)a->output_padding[0], (long long)a->output_padding[1]);
        if (!a->stride[k]) a->stride[k] = 1;
        if (!a->dilation[k]) a->dilation[k] = 1;
    }
    OP_CHECK(a->groups >= 0, "%s: negative groups %lld", op, (long long)a->groups);
    if (!a->groups) a->groups = 1;
    int64_t G = a->groups, C = sx.d[1], kh = sw.d[2], kw = sw.d[3];
    OP_CHECK(sw.d[0] > 0 && sw.d[1] > 0 && kh > 0 && kw > 0 && C > 0, "%s: empty channels or kernel: x %s, w %s", op,
             tg_shape_str(sx, b1), tg_shape_str(sw, b2));
    int64_t O = transpose ? sw.d[1] * G : sw.d[0];
    if (transpose)
        OP_CHECK(sw.d[0] == C && C % G == 0, "%s: x %s has %lld channels, w %s %s needs w.shape[0] = %lld divisible "
                 "by groups %lld", op, tg_shape_str(sx, b1), (long long)C, tg_shape_str(sw, b2), wdesc,
                 (long long)sw.d[0], (long long)G);
    else
        OP_CHECK(sw.d[1] * G == C && O % G == 0, "%s: x %s has %lld channels, w %s %s expects %lld (%lld per group x "
                 "%lld groups, and O divisible by groups)", op, tg_shape_str(sx, b1), (long long)C,
                 tg_shape_str(sw, b2), wdesc, (long long)(sw.d[1] * G), (long long)sw.d[1], (long long)G);
    if (b)
        OP_CHECK(b->val.shape.ndim == 1 && b->val.shape.d[0] == O, "%s: bias %s must be (%lld) for x %s, w %s", op,
                 tg_shape_str(b->val.shape, b1), (long long)O, tg_shape_str(sx, b2), tg_shape_str(sw, b3));
    tg_shape out = {.ndim = 4, .d = {sx.d[0], O}};
    for (int k = 0; k < 2; k++) {
        int64_t in = sx.d[2 + k], kk = sw.d[2 + k], s = a->stride[k], p = a->padding[k], d = a->dilation[k];
        int64_t op_ = a->output_padding[k];
        if (transpose) {
            OP_CHECK(op_ < s || op_ < d, "%s: output_padding (%lld, %lld) must be smaller than the stride (%lld, %lld) "
                     "or the dilation (%lld, %lld)", op, (long long)a->output_padding[0], (long long)a->output_padding[1],
                     (long long)a->stride[0], (long long)a->stride[1], (long long)a->dilation[0],
                     (long long)a->dilation[1]);
            out.d[2 + k] = tg_conv_transpose_out_size(in, kk, s, p, d, op_);
            OP_CHECK(out.d[2 + k] > 0, "%s: x %s, w %s with stride (%lld, %lld), padding (%lld, %lld), dilation "
                     "(%lld, %lld) give an empty output (%lld along dim %d)", op, tg_shape_str(sx, b1),
                     tg_shape_str(sw, b2), (long long)a->stride[0], (long long)a->stride[1], (long long)a->padding[0],
                     (long long)a->padding[1], (long long)a->dilation[0], (long long)a->dilation[1],
                     (long long)out.d[2 + k], 2 + k);
        } else {
            OP_CHECK(op_ == 0, "%s: output_padding (%lld, %lld) applies to conv_transpose2d only", op,
                     (long long)a->output_padding[0], (long long)a->output_padding[1]);
            OP_CHECK(d * (kk - 1) + 1 <= in + 2 * p, "%s: kernel %lld x %lld (dilation %lld, %lld) is larger than the "
                     "padded input: x %s, w %s, padding (%lld, %lld)", op, (long long)kh, (long long)kw,
                     (long long)a->dilation[0], (long long)a->dilation[1], tg_shape_str(sx, b1), tg_shape_str(sw, b2),
                     (long long)a->padding[0], (long long)a->padding[1]);
            out.d[2 + k] = tg_conv_out_size(in, kk, s, p, d);
        }
    }
    return out;
}

/* The entry's saved arguments, in the tape's arena. */
static void save_args(tg_tape *t, tg_entry *e, tg_conv_args a) {
    tg_conv_args *s = tg_arena_alloc(tg_tape_arena(t), sizeof *s);
    *s = a;
    e->ctx = s;
}

/* Whether the backward may set (=) the gradient of x (set_x), and those of
 * w and b (set_w): none has reached them yet, and x, w and b are distinct
 * vars (one var in two roles gets both pieces added). In training w and b
 * are parameters, whose gradients always exist: x's alone is set. */
static void first_grads(const tg_var *x, const tg_var *w, const tg_var *b, bool *set_x, bool *set_w) {
    bool distinct = x != w && x != b && w != b;
    *set_x = distinct && grad_untouched(x);
    *set_w = distinct && grad_untouched(w) && grad_untouched(b);
}

/* The gradient reaching the convolution itself: dy, or with a fused ReLU
 * (args.relu, tg_conv_relu) dy where y > 0 and 0 elsewhere, as relu's rule. */
static const tg_tensor *relu_masked(tg_tape *t, const tg_entry *e) {
    const tg_tensor *dy = &e->out->grad;
    if (!((const tg_conv_args *)e->ctx)->relu) return dy;
    tg_tensor *m = scratch(t, dy);
    tg_tensor_mask_pos(m, dy, &e->out->val);
    return m;
}

/* ---------------------------------------------------------------- conv2d */

tg_var *tg_conv2d_(TG_LOC, tg_tape *t, tg_var *x, tg_var *w, tg_var *b, tg_conv_args a) {
    tg_shape s = conv_shape(file, line, "conv2d", false, x, w, b, &a);
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    tg_tensor *col = tg_conv2d_forward(tg_tape_arena(t), &out->val, &x->val, &w->val, b ? &b->val : NULL, a, false);
    tg_entry *e = tg_record3(t, TG_OP_CONV2D, out, x, w, b);
    if (e) {
        save_args(t, e, a);
        e->saved = col;   /* im2col of x, for the weight gradient */
    }
    return out;
}

/* dx += conv_transpose2d(dy, w), dw += dy_(O, N Ho Wo) col^T, db += dy summed over (N, Ho, Wo). */
TG_BACKWARD(conv2d) {
    tg_var *x = e->in[0], *w = e->in[1], *b = e->in[2];
    bool set_x, set_w;
    first_grads(x, w, b, &set_x, &set_w);
    tg_conv2d_backward(tg_tape_arena(t), grad_for(t, x, set_x), grad_for(t, w, set_w), grad_for(t, b, set_w),
                       relu_masked(t, e), &x->val, &w->val, e->saved, *(const tg_conv_args *)e->ctx, !set_x, !set_w);
}

/* ---------------------------------------------------------------- conv_transpose2d */

tg_var *tg_conv_transpose2d_(TG_LOC, tg_tape *t, tg_var *x, tg_var *w, tg_var *b, tg_conv_args a) {
    tg_shape s = conv_shape(file, line, "conv_transpose2d", true, x, w, b, &a);
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    tg_conv_transpose2d_forward(tg_tape_arena(t), &out->val, &x->val, &w->val, b ? &b->val : NULL, a);
    tg_entry *e = tg_record3(t, TG_OP_CONV_TRANSPOSE2D, out, x, w, b);
    if (e) save_args(t, e, a);
    return out;
}

/* dx += conv2d(dy, w), dw += x_(C, N H W) im2col(dy)^T, db += dy summed over (N, Ho, Wo). */
TG_BACKWARD(conv_transpose2d) {
    tg_var *x = e->in[0], *w = e->in[1], *b = e->in[2];
    bool set_x, set_w;
    first_grads(x, w, b, &set_x, &set_w);
    tg_conv_transpose2d_backward(tg_tape_arena(t), grad_for(t, x, set_x), grad_for(t, w, set_w),
                                 grad_for(t, b, set_w), relu_masked(t, e), &x->val, &w->val,
                                 *(const tg_conv_args *)e->ctx, !set_x, !set_w);
}
