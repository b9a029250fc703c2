/*
 * pool2d.c — max_pool2d, avg_pool2d and upsample_nearest2d over the last two
 * axes of an (N, C, H, W) input, as PyTorch 1.13.
 *
 * Each op checks its arguments with the caller's file:line, resolves
 * PyTorch's defaults into a tg_pool2d (tensor/kernels.h) and records one
 * tape entry; the loops are tensor/kernels_pool.c's.
 */
#include "autograd/internal.h"

/* The arguments as "kernel (3, 2) stride (2, 2) padding (1, 0) dilation (1, 1)", into buf. */
static const char *args_str(const tg_pool_args *a, char *buf, size_t n) {
    snprintf(buf, n, "kernel (%lld, %lld) stride (%lld, %lld) padding (%lld, %lld) dilation (%lld, %lld)%s",
             (long long)a->kernel[0], (long long)a->kernel[1], (long long)a->stride[0], (long long)a->stride[1],
             (long long)a->padding[0], (long long)a->padding[1], (long long)a->dilation[0], (long long)a->dilation[1],
             a->ceil_mode ? " ceil_mode" : "");
    return buf;
}

/* Checks x and a for op and resolves a into *g; returns the output shape. */
static tg_shape pool_shape(TG_LOC, const char *op, const tg_var *x, tg_pool_args a, bool max, tg_pool2d *g) {
    char b[96], s[200];
    tg_check_float(file, line, op, x);
    tg_shape xs = x->val.shape;
    OP_CHECK(xs.ndim == 4, "%s: x must be 4-D (N, C, H, W), got %s", op, tg_shape_str(xs, b));
    OP_CHECK(max || (a.dilation[0] <= 1 && a.dilation[1] <= 1), "%s: has no dilation, got %s", op,
             args_str(&a, s, sizeof s));
    *g = (tg_pool2d){.ceil_mode = a.ceil_mode, .count_include_pad = !a.count_include_pad_off};
    tg_shape out = xs;
    for (int k = 0; k < 2; k++) {
        OP_CHECK(a.kernel[k] >= 1 && a.stride[k] >= 0 && a.dilation[k] >= 0 && a.padding[k] >= 0,
                 "%s: kernel must be >= 1 and stride, padding, dilation >= 0, got %s (x %s)", op,
                 args_str(&a, s, sizeof s), tg_shape_str(xs, b));
        OP_CHECK(a.padding[k] <= a.kernel[k] / 2, "%s: padding must be at most half the kernel, got %s (x %s)", op,
                 args_str(&a, s, sizeof s), tg_shape_str(xs, b));
        g->kernel[k] = a.kernel[k];
        g->stride[k] = a.stride[k] ? a.stride[k] : a.kernel[k];
        g->padding[k] = a.padding[k];
        g->dilation[k] = a.dilation[k] ? a.dilation[k] : 1;
        out.d[2 + k] = tg_pool2d_out_size(xs.d[2 + k], g->kernel[k], g->stride[k], g->padding[k], g->dilation[k],
                                          g->ceil_mode);
    }
    OP_CHECK(out.d[2] >= 1 && out.d[3] >= 1, "%s: the kernel is larger than the padded input: x %s, %s gives %lld x %lld",
             op, tg_shape_str(xs, b), args_str(&a, s, sizeof s), (long long)out.d[2], (long long)out.d[3]);
    return out;
}

/* ---------------------------------------------------------------- max_pool2d */

/* y[o] = max of x over window(o):  dx[argmax(o)] += dy[o], argmax saved per output. */
tg_var *tg_max_pool2d_(TG_LOC, tg_tape *t, tg_var *x, tg_pool_args a) {
    tg_pool2d g;
    tg_var *out = tg_var_new(t, x->val.dtype, pool_shape(file, line, "max_pool2d", x, a, true, &g));
    tg_entry *e = tg_record(t, TG_OP_MAX_POOL2D, out, x, NULL);
    tg_tensor *idx = e ? tg_tensor_new(tg_tape_arena(t), TG_I64, out->val.shape) : NULL;
    tg_tensor_max_pool2d(&out->val, idx, &x->val, &g);
    if (e) e->saved = idx;
    return out;
}

TG_BACKWARD(max_pool2d) {
    tg_tensor_acc_max_pool2d_grad(tg_var_grad(t, e->in[0]), &e->out->grad, e->saved);
}

/* ---------------------------------------------------------------- avg_pool2d */

/* y[o] = sum of x over window(o) / count(o):  dx[window(o)] += dy[o] / count(o). */
tg_var *tg_avg_pool2d_(TG_LOC, tg_tape *t, tg_var *x, tg_pool_args a) {
    tg_pool2d g;
    tg_var *out = tg_var_new(t, x->val.dtype, pool_shape(file, line, "avg_pool2d", x, a, false, &g));
    tg_tensor_avg_pool2d(&out->val, &x->val, &g);
    tg_entry *e = tg_record(t, TG_OP_AVG_POOL2D, out, x, NULL);
    if (e) {
        tg_pool2d *saved = tg_arena_alloc(tg_tape_arena(t), sizeof *saved);
        *saved = g;
        e->ctx = saved;
    }
    return out;
}

TG_BACKWARD(avg_pool2d) {
    tg_tensor_acc_avg_pool2d_grad(tg_var_grad(t, e->in[0]), &e->out->grad, e->ctx);
}

/* ---------------------------------------------------------------- upsample_nearest2d */

/* y[h, w] = x[h / sh, w / sw]:  dx[i, j] += sum of dy over the block [i sh, (i+1) sh) x [j sw, (j+1) sw). */
tg_var *tg_upsample_nearest2d_(TG_LOC, tg_tape *t, tg_var *x, int64_t scale_h, int64_t scale_w) {
    char b[96];
    tg_check_float(file, line, "upsample_nearest2d", x);
    tg_shape s = x->val.shape;
    OP_CHECK(s.ndim == 4, "upsample_nearest2d: x must be 4-D (N, C, H, W), got %s", tg_shape_str(s, b));
    OP_CHECK(scale_h >= 1 && scale_w >= 1, "upsample_nearest2d: scales must be integers >= 1, got (%lld, %lld) for x %s",
             (long long)scale_h, (long long)scale_w, tg_shape_str(s, b));
    OP_CHECK(s.d[2] >= 1 && s.d[3] >= 1, "upsample_nearest2d: x %s has an empty plane", tg_shape_str(s, b));
    s.d[2] *= scale_h, s.d[3] *= scale_w;
    tg_var *out = tg_var_new(t, x->val.dtype, s);
    tg_tensor_upsample_nearest2d(&out->val, &x->val);
    tg_entry *e = tg_record(t, TG_OP_UPSAMPLE_NEAREST2D, out, x, NULL);
    if (e) e->i[0] = scale_h, e->i[1] = scale_w;
    return out;
}

TG_BACKWARD(upsample_nearest2d) {
    tg_tensor_acc_upsample_nearest2d_grad(tg_var_grad(t, e->in[0]), &e->out->grad);
}
